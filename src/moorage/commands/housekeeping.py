"""``moorage gc`` and ``moorage fsck``."""

from __future__ import annotations

from typing import Annotated

import typer

from moorage.commands.common import DatabaseUrl, DataDir, open_services
from moorage.registry.housekeeping import Housekeeping


def _progress(label: str):  # type: ignore[no-untyped-def]
    def wrap(items):  # type: ignore[no-untyped-def]
        items = list(items)
        with typer.progressbar(items, label=label, file=None) as bar:
            yield from bar
    return wrap


def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed; remove nothing")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove blobs no image references and abandoned uploads older than MOORAGE_GC_GRACE."""
    services = open_services(data_dir, database_url)
    try:
        summary = Housekeeping(services.context).collect(
            services.settings.gc_grace, dry_run=dry_run, progress=_progress("collecting"))
    finally:
        services.close()
    verb = "would remove" if dry_run else "removed"
    for digest, size in summary.blobs:
        typer.echo(f"  blob {digest}  {size} bytes")
    typer.echo(f"{verb}: {len(summary.blobs)} blobs ({summary.bytes} bytes), "
               f"{len(summary.uploads)} abandoned uploads, {len(summary.orphan_files)} orphan files"
               + (f"; kept {len(summary.skipped)} blobs referenced meanwhile" if summary.skipped else ""))


def fsck(
    repair: Annotated[bool, typer.Option("--repair", help="Repair what can be repaired")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Verify every blob's digest and size, every manifest's references and every upload.
    Exit status 0 when consistent (after repairs), 1 otherwise."""
    services = open_services(data_dir, database_url)
    try:
        report = Housekeeping(services.context).fsck(repair=repair, progress=_progress("checking"))
    finally:
        services.close()
    for problem in report.problems:
        mark = "repaired" if problem in report.repaired else "PROBLEM"
        typer.echo(f"{mark}: {problem}")
    typer.echo(f"checked {report.checked_blobs} blobs and {report.checked_images} images: "
               f"{len(report.problems)} problems, {len(report.repaired)} repaired")
    raise typer.Exit(0 if report.consistent else 1)
