"""What every registry-touching command shares: storage options and opening the services."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from moorage.config import LOG_LEVELS, Settings, SettingsError
from moorage.services import Services

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Data directory [env MOORAGE_DATA_DIR; default ./moorage-data]")]
DatabaseUrl = Annotated[Optional[str], typer.Option("--database-url", help="SQLAlchemy URL [env MOORAGE_DATABASE_URL; default SQLite in the data directory]")]


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and flags; exit 2 with a message when invalid."""
    try:
        return Settings.from_environment(**overrides)
    except SettingsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


def open_services(data_dir: Path | None, database_url: str | None) -> Services:
    """The registry's services on the given storage; exit 1 with a message when it cannot be
    opened. Safe while a server runs on the same data."""
    from moorage.observability import configure_logging
    from moorage.services import StartupError, build_services

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    configure_logging(settings.log_format, LOG_LEVELS[settings.log_level])
    try:
        return build_services(settings)
    except StartupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
