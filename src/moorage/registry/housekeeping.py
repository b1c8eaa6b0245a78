"""Housekeeping: garbage collection of unreferenced blobs and abandoned uploads, and fsck.

Garbage collection never breaks an image or an in-flight push:

* only blobs that no image references, whose row and every repository link are older than the
  grace period, are candidates;
* each candidate is deleted in its own transaction: its links, then its row — which the
  database refuses while any image references it (``image_references.blob_digest`` is a foreign
  key) — then its file, before the commit. A publisher of the same blob takes the blob row
  first (:func:`moorage.registry.blobs.claim_blob`), so the two are ordered by the database;
* upload sessions idle for longer than the grace period, and upload or blob files that no row
  names (residue of a crash) and that are older than the grace period, are removed.

Sources: DESIGN.md §6; ecr-api.md §3.7 (unreferenced layers may be collected).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from moorage import metrics
from moorage.registry.context import RegistryContext
from moorage.storage.blobs import paths
from moorage.storage.metadata.database import insert_ignoring_duplicates
from moorage.storage.metadata.schema import (
    Blob,
    Image,
    ImageReference,
    RepositoryBlob,
    UploadSession,
)

log = structlog.get_logger("moorage.housekeeping")

# Files no row names are crash residue (or a publication in its last microseconds): they are
# removed only once this old in real time, whatever the grace period or the test clock say.
ORPHAN_FILE_MIN_AGE_SECONDS = 3600

Progress = Callable[[Iterable], Iterable]


def _no_progress(items: Iterable) -> Iterable:
    return items


@dataclass
class CollectionSummary:
    """What a garbage collection found (``dry_run``) or did. Sizes in bytes."""

    dry_run: bool
    blobs: list[tuple[str, int]] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    orphan_files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        """Bytes of the collected (or collectable) blobs."""
        return sum(size for _, size in self.blobs)


@dataclass
class FsckReport:
    """Problems found by :meth:`Housekeeping.fsck`, and those repaired."""

    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    checked_blobs: int = 0
    checked_images: int = 0

    @property
    def consistent(self) -> bool:
        """True when every problem found was repaired (or none was found)."""
        return len(self.problems) == len(self.repaired)


class Housekeeping:
    """Garbage collection and consistency checks over one registry's stores."""

    def __init__(self, context: RegistryContext) -> None:
        self.context = context

    # -- garbage collection ---------------------------------------------------------------

    def collect(self, grace_seconds: float, dry_run: bool = False,
                progress: Progress = _no_progress) -> CollectionSummary:
        """Remove unreferenced blobs and abandoned uploads older than ``grace_seconds``.

        Args:
            progress: wraps the iterable of work items (e.g. a progress bar).

        Returns:
            the summary of what was (or, with ``dry_run``, would be) removed.
        """
        now = self.context.clock.now()
        cutoff = now - grace_seconds
        summary = CollectionSummary(dry_run=dry_run)
        stale_uploads = self._stale_uploads(cutoff)
        candidates = self._unreferenced_blobs(cutoff)
        orphans = self._orphan_files(min(cutoff, time.time() - ORPHAN_FILE_MIN_AGE_SECONDS))
        work = ([("upload", u) for u in stale_uploads] + [("blob", b) for b in candidates]
                + [("file", f) for f in orphans])
        for kind, item in progress(work):
            if kind == "upload":
                if dry_run or self._delete_stale_upload(item, cutoff):
                    summary.uploads.append(item)
            elif kind == "blob":
                digest, size = item
                if dry_run or self._delete_blob(digest, cutoff):
                    summary.blobs.append((digest, size))
                else:
                    summary.skipped.append(digest)
            else:
                if dry_run or self._delete_orphan_file(item, time.time() - ORPHAN_FILE_MIN_AGE_SECONDS):
                    summary.orphan_files.append(item)
        if not dry_run:
            metrics.BLOBS_COLLECTED.inc(len(summary.blobs))
            metrics.BYTES_COLLECTED.inc(summary.bytes)
            metrics.UPLOADS_COLLECTED.inc(len(summary.uploads))
        log.info("gc.finished", dry_run=dry_run, blobs=len(summary.blobs), bytes=summary.bytes,
                 uploads=len(summary.uploads), orphan_files=len(summary.orphan_files),
                 skipped=len(summary.skipped))
        return summary

    def _stale_uploads(self, cutoff: float) -> list[str]:
        with self.context.database.read() as session:
            return list(session.scalars(
                select(UploadSession.id).where(UploadSession.updated_at < cutoff)))

    def _unreferenced_blobs(self, cutoff: float) -> list[tuple[str, int]]:
        newest_link = (
            select(func.max(RepositoryBlob.created_at))
            .where(RepositoryBlob.digest == Blob.digest)
            .scalar_subquery()
        )
        referenced = select(ImageReference.blob_digest).where(ImageReference.blob_digest.is_not(None))
        with self.context.database.read() as session:
            rows = session.execute(
                select(Blob.digest, Blob.size_bytes).where(
                    Blob.created_at < cutoff,
                    Blob.digest.not_in(referenced),
                    func.coalesce(newest_link, 0) < cutoff,
                ).order_by(Blob.digest)
            ).all()
        return [(digest, int(size)) for digest, size in rows]

    def _orphan_files(self, cutoff: float) -> list[str]:
        """Upload files with no session and blob files with no row, older than ``cutoff``."""
        with self.context.database.read() as session:
            sessions = set(session.scalars(select(UploadSession.id)))
            blobs = set(session.scalars(select(Blob.digest)))
        orphans = []
        uploads = paths.uploads_dir(self.context.blobs.root)
        for entry in os.scandir(uploads):
            if entry.name not in sessions and entry.stat().st_ctime < cutoff:
                orphans.append(entry.path)
        for digest in self.context.blobs.iter_blob_digests():
            if digest not in blobs:
                path = self.context.blobs.blob_path(digest)
                if path.stat().st_ctime < cutoff:
                    orphans.append(str(path))
        return orphans

    def _delete_upload(self, upload_id: str) -> None:
        with self.context.database.write_connection() as connection:
            connection.execute(delete(UploadSession).where(UploadSession.id == upload_id))
        self.context.blobs.delete_upload(upload_id)

    def _delete_stale_upload(self, upload_id: str, cutoff: float) -> bool:
        """Delete an upload session idle since before ``cutoff``, unless a request is writing
        to it or it was used meanwhile. True when deleted."""
        try:
            fd = self.context.blobs.lock_upload(upload_id)
        except BlockingIOError:
            return False  # a request holds it: not abandoned
        except FileNotFoundError:
            fd = None
        try:
            with self.context.database.write_connection() as connection:
                deleted = connection.execute(delete(UploadSession).where(
                    UploadSession.id == upload_id, UploadSession.updated_at < cutoff)).rowcount
            if deleted:
                self.context.blobs.delete_upload(upload_id)
            return bool(deleted)
        finally:
            if fd is not None:
                os.close(fd)

    def _delete_blob(self, digest: str, cutoff: float,
                     still: Callable[[], bool] = lambda: True) -> bool:
        """Delete one blob unless it is young, freshly linked or referenced. True when deleted.

        The blob row is locked first, so a publisher or mounter of the same blob is ordered
        with us by the database: it either committed before (and we see its fresh link or
        time and keep the blob) or waits until we are done (and publishes afresh). The file
        goes while the lock is held.
        """
        is_sqlite = self.context.database.is_sqlite
        try:
            with self.context.database.write_connection() as connection:
                query = select(Blob.created_at).where(Blob.digest == digest)
                row = connection.execute(query if is_sqlite else query.with_for_update()).first()
                if row is None or row.created_at >= cutoff:
                    return False
                fresh = connection.execute(select(func.count()).select_from(RepositoryBlob).where(
                    RepositoryBlob.digest == digest, RepositoryBlob.created_at >= cutoff)).scalar()
                referenced = connection.execute(select(func.count()).select_from(ImageReference).where(
                    ImageReference.blob_digest == digest)).scalar()
                if fresh or referenced or not still():
                    return False
                connection.execute(delete(RepositoryBlob).where(RepositoryBlob.digest == digest))
                connection.execute(delete(Blob).where(Blob.digest == digest))
                self.context.blobs.delete_blob(digest)
        except IntegrityError:  # referenced after all (the foreign key said so)
            log.info("gc.blob_now_referenced", digest=digest)
            return False
        log.info("gc.blob_deleted", digest=digest)
        return True

    def _delete_orphan_file(self, path: str, cutoff: float) -> bool:
        """Remove a file no row names (crash residue), older than ``cutoff`` (real time).

        For a blob file, a placeholder row is inserted first: a publisher of the same blob then
        waits for us (or we find its row and keep the file).
        """
        try:
            if os.stat(path).st_ctime >= cutoff:
                return False
        except FileNotFoundError:
            return False
        name = os.path.basename(path)
        if os.path.dirname(path) == str(paths.uploads_dir(self.context.blobs.root)):
            with self.context.database.read() as session:
                if session.get(UploadSession, name) is not None:
                    return False
            _unlink(path)
            return True
        digest = "sha256:" + name
        with self.context.database.write_connection() as connection:
            if not insert_ignoring_duplicates(connection, Blob, {
                    "digest": digest, "size_bytes": 0, "created_at": self.context.clock.now()}):
                return False  # a row names it now
            _unlink(path)
            connection.execute(delete(Blob).where(Blob.digest == digest))
        return True

    # -- fsck -------------------------------------------------------------------------------

    def fsck(self, repair: bool = False, progress: Progress = _no_progress) -> FsckReport:
        """Verify every blob's size and digest, every image's references and digest, and every
        upload session; with ``repair``, fix what can be fixed.

        Repairs: a corrupt or missing blob that no image references is forgotten; a missing
        repository link to an existing blob is re-created; upload sessions without data and
        upload files without a session are removed; blob files without a row are removed.
        A corrupt blob that images reference, an image whose bytes do not hash to its digest,
        and a missing child manifest are reported, not repaired.
        """
        report = FsckReport()
        with self.context.database.read() as session:
            blobs = list(session.execute(select(Blob.digest, Blob.size_bytes)).all())
            referenced = set(session.scalars(
                select(ImageReference.blob_digest).where(ImageReference.blob_digest.is_not(None))))
            images = list(session.execute(select(Image.id, Image.repository_id, Image.digest, Image.content)).all())
            references = list(session.execute(select(
                ImageReference.image_id, ImageReference.digest, ImageReference.kind)).all())
            links = set(session.execute(select(RepositoryBlob.repository_id, RepositoryBlob.digest)).all())
            sessions = list(session.scalars(select(UploadSession.id)))
        known = {digest for digest, _ in blobs}
        for digest, size in progress(blobs):
            report.checked_blobs += 1
            problem = self._check_blob(digest, int(size))
            if problem is not None:
                # A live server may have collected or re-published it since the snapshot.
                problem = self._check_blob(digest, int(size)) if self._blob_row(digest) else None
            if problem is None:
                continue
            report.problems.append(problem)
            if repair and digest not in referenced and self._delete_blob(
                    digest, float("inf"), still=lambda: self._check_blob(digest, int(size)) is not None):
                report.repaired.append(problem)
        image_repository = {image_id: repository_id for image_id, repository_id, _, _ in images}
        digests_by_repository = {(repository_id, digest) for _, repository_id, digest, _ in images}
        for image_id, repository_id, digest, content in images:
            report.checked_images += 1
            if "sha256:" + hashlib.sha256(content).hexdigest() != digest:
                report.problems.append(f"image {digest}: its bytes do not hash to its digest")
        for image_id, digest, kind in references:
            repository_id = image_repository[image_id]
            if kind == "manifest" and (repository_id, digest) not in digests_by_repository:
                report.problems.append(f"image #{image_id}: child manifest {digest} is missing")
            if kind == "blob" and (repository_id, digest) not in links and digest in known:
                problem = f"image #{image_id}: blob {digest} is not linked to its repository"
                report.problems.append(problem)
                if repair:
                    with self.context.database.transaction() as session:
                        from moorage.registry.blobs import link_blob

                        link_blob(session, repository_id, digest, self.context.clock.now())
                    links.add((repository_id, digest))
                    report.repaired.append(problem)
        for upload_id in sessions:
            if self.context.blobs.upload_size(upload_id) is None and self._session_row(upload_id):
                problem = f"upload {upload_id}: session without data"
                report.problems.append(problem)
                if repair:
                    self._delete_upload(upload_id)
                    report.repaired.append(problem)
        for path in self._orphan_files(time.time() - ORPHAN_FILE_MIN_AGE_SECONDS):
            problem = f"file {path}: no row names it"
            report.problems.append(problem)
            if repair and self._delete_orphan_file(path, time.time() - ORPHAN_FILE_MIN_AGE_SECONDS):
                report.repaired.append(problem)
        return report

    def _blob_row(self, digest: str) -> bool:
        with self.context.database.read() as session:
            return session.get(Blob, digest) is not None

    def _session_row(self, upload_id: str) -> bool:
        with self.context.database.read() as session:
            return session.get(UploadSession, upload_id) is not None

    def _check_blob(self, digest: str, size: int) -> str | None:
        actual = self.context.blobs.blob_size(digest)
        if actual is None:
            return f"blob {digest}: file missing"
        if actual != size:
            return f"blob {digest}: {actual} bytes stored, {size} recorded"
        hasher = hashlib.sha256()
        with open(self.context.blobs.blob_path(digest), "rb") as handle:
            while chunk := handle.read(1024 * 1024):
                hasher.update(chunk)
        if "sha256:" + hasher.hexdigest() != digest:
            return f"blob {digest}: content hashes to sha256:{hasher.hexdigest()}"
        return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
