"""The ``moorage`` command line (typer): serve, keys, gc, fsck, lifecycle.

Every command that touches the registry takes the same storage options as ``serve`` and works
while a server runs on the same data.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from moorage.commands import housekeeping
from moorage.commands.lifecycle import lifecycle_app
from moorage.commands.common import DatabaseUrl, DataDir, load_settings, open_services

app = typer.Typer(help="Moorage: a self-hosted container registry compatible with Amazon ECR.",
                  no_args_is_help=True, add_completion=False, rich_markup_mode=None)
keys_app = typer.Typer(help="Manage access keys.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(keys_app, name="keys")
app.command()(housekeeping.gc)
app.command()(housekeeping.fsck)
app.add_typer(lifecycle_app, name="lifecycle")


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to listen on [env MOORAGE_HOST; default 127.0.0.1]")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port [env MOORAGE_PORT; default 5000]")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Worker processes [env MOORAGE_WORKERS; default: number of CPUs]")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the registry (ECR API on POST /, OCI Distribution API on /v2/)."""
    from moorage.server import run
    from moorage.services import StartupError

    try:
        run(load_settings(host=host, port=port, workers=workers, data_dir=data_dir, database_url=database_url))
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
    services = open_services(data_dir, database_url)
    key = services.keys.create(user)
    typer.echo(f"aws_access_key_id = {key.access_key_id}")
    typer.echo(f"aws_secret_access_key = {key.secret_access_key}")
    services.close()


@keys_app.command("list")
def keys_list(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """List access keys (without secrets)."""
    services = open_services(data_dir, database_url)
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
    services = open_services(data_dir, database_url)
    deleted = services.keys.delete(access_key_id)
    services.close()
    if not deleted:
        typer.echo(f"error: no access key {access_key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"deleted {access_key_id}")


def main() -> None:
    """Console-script entry point."""
    app()
