"""Command-line sub-commands beyond ``serve`` and ``keys``."""
