"""``python -m moorage`` runs the command-line interface."""

from moorage.cli import main

main()
