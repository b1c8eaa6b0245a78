"""``moorage lifecycle run``: apply lifecycle policies now (or as of another instant).

Output (stdout), one block per repository with a policy, then a total line::

    lifecycle run at 2025-02-01T00:00:00Z (dry run: nothing deleted)
    REPOSITORY                        EVALUATED  EXPIRED
    app                                       3        1
      would expire sha256:…  rulePriority 1  pushed 2025-01-22T00:00:00Z  tags beta-1,prod-1
    total: 1 repositories, 3 images evaluated, 1 would expire

Per-image lines read ``expired`` (or ``would expire`` with ``--dry-run``), ``transition
skipped`` (Moorage has no archive), ``deleted with subject`` (referrer cascade) or ``error``.
Exit status 0; 1 when the named repository does not exist or has no policy; 2 for a bad
``--now``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Optional

import typer

from moorage.commands.common import DatabaseUrl, DataDir, open_services

lifecycle_app = typer.Typer(help="Lifecycle policies.", no_args_is_help=True, rich_markup_mode=None)


def parse_instant(value: str) -> float:
    """``--now``: epoch seconds (``1738368000``, ``1738368000.5``) or ISO 8601
    (``2025-02-01``, ``2025-02-01T00:00:00Z``, with any offset; no offset means UTC).

    Raises:
        ValueError: neither form.
    """
    try:
        return float(value)
    except ValueError:
        pass
    parsed = dt.datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def _iso(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    text = moment.isoformat(timespec="milliseconds" if epoch % 1 else "seconds")
    return text.replace("+00:00", "Z")


@lifecycle_app.command("run")
def run(
    repository: Annotated[Optional[str], typer.Option("--repository", help="Only this repository")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would expire; delete nothing")] = False,
    now: Annotated[Optional[str], typer.Option("--now", metavar="TIMESTAMP", help="Evaluate as of this instant: epoch seconds or ISO 8601 (default: the current time)")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Apply every repository's lifecycle policy (as the server does periodically)."""
    from moorage import errors
    from moorage.lifecycle.executor import LifecycleExecutor

    instant = None
    if now is not None:
        try:
            instant = parse_instant(now)
        except ValueError:
            typer.echo(f"error: --now must be epoch seconds or ISO 8601, not {now!r}", err=True)
            raise typer.Exit(2) from None
    services = open_services(data_dir, database_url)
    try:
        summary = LifecycleExecutor(services).run(repository, dry_run=dry_run, now=instant)
    except errors.NotFound as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        services.close()

    verb = "would expire" if dry_run else "expired"
    typer.echo(f"lifecycle run at {_iso(summary.now)}"
               + (" (dry run: nothing deleted)" if dry_run else ""))
    typer.echo(f"{'REPOSITORY':<40} {'EVALUATED':>9} {'EXPIRED':>8}")
    for result in summary.repositories:
        typer.echo(f"{result.repository:<40} {result.evaluated:>9} {len(result.expired):>8}")
        for image in result.expired:
            typer.echo(f"  {verb} {image.digest}  rulePriority {image.rule_priority}  "
                       f"pushed {_iso(image.pushed_at)}  tags {','.join(image.tags) or '-'}")
        for image in result.skipped_transitions:
            typer.echo(f"  transition skipped {image.digest}  rulePriority {image.rule_priority}  "
                       "(no archive storage class)")
        for digest in result.also_deleted:
            typer.echo(f"  deleted with subject {digest}")
        for problem in result.errors:
            typer.echo(f"  error: {problem}")
    typer.echo(f"total: {len(summary.repositories)} repositories, {summary.evaluated_count} images "
               f"evaluated, {summary.expired_count} {verb}")
