"""The ``moorage`` command line: serve, and key management (typer).

Every command that touches the registry takes the same storage options as ``serve`` and works
while a server runs on the same data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from moorage.config import Settings, SettingsError

app = typer.Typer(help="Moorage: a self-hosted container registry compatible with Amazon ECR.",
                  no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Manage access keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DataDir = Annotated[Optional[Path], typer.Option("--data-dir", help="Data directory [env MOORAGE_DATA_DIR; default ./moorage-data]")]
DatabaseUrl = Annotated[Optional[str], typer.Option("--database-url", help="SQLAlchemy URL [env MOORAGE_DATABASE_URL; default SQLite in the data directory]")]


def _settings(**overrides: object) -> Settings:
    try:
        return Settings.from_environment(**overrides)
    except SettingsError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to listen on [env MOORAGE_HOST; default 127.0.0.1]")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port [env MOORAGE_PORT; default 5000]")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the registry (ECR API on POST /, OCI Distribution API on /v2/)."""
    from moorage.server import run
    from moorage.services import StartupError

    try:
        run(_settings(host=host, port=port, data_dir=data_dir, database_url=database_url))
    except StartupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


def _services(data_dir: Path | None, database_url: str | None):  # type: ignore[no-untyped-def]
    from moorage.observability import configure_logging
    from moorage.services import StartupError, build_services

    settings = _settings(data_dir=data_dir, database_url=database_url)
    configure_logging(settings.log_format)
    try:
        return build_services(settings)
    except StartupError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="User name of the principal (arn:aws:iam::<account>:user/<user>)")] = "admin",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an access key and print it (the secret is shown only once)."""
    services = _services(data_dir, database_url)
    key = services.keys.create(user)
    typer.echo(f"aws_access_key_id = {key.access_key_id}")
    typer.echo(f"aws_secret_access_key = {key.secret_access_key}")
    services.close()


@keys_app.command("list")
def keys_list(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """List access keys (without secrets)."""
    services = _services(data_dir, database_url)
    for key in services.keys.list():
        typer.echo(f"{key.access_key_id}\t{key.user_name}")
    services.close()


@keys_app.command("delete")
def keys_delete(
    access_key_id: Annotated[str, typer.Argument(help="The access key id to delete")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete an access key; requests signed with it, and its login tokens, stop working."""
    services = _services(data_dir, database_url)
    deleted = services.keys.delete(access_key_id)
    services.close()
    if not deleted:
        typer.echo(f"error: no access key {access_key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"deleted {access_key_id}")


def main() -> None:
    """Console-script entry point."""
    app()
