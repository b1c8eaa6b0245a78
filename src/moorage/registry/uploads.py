"""Upload sessions, shared by the OCI upload routes and ECR's layer-upload operations.

A session is a row in ``upload_sessions`` plus a data file in the blob store, so it survives a
restart and can be continued by another process. Bytes are hashed as they are appended; the
running hasher is kept in process memory keyed by (upload id, offset) and used on completion
when it covers every byte, otherwise the stored data is hashed again (the always-correct path).

Sources: OCI distribution-spec v1.1 "Pushing blobs" (monolithic, chunked, status, cancel);
ecr-api.md §3.10–3.12 (InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import update

from moorage import errors
from moorage.images.digests import parse_digest
from moorage.registry.blobs import claim_blob, link_blob
from moorage.registry.context import RegistryContext
from moorage.storage.metadata import statements
from moorage.storage.metadata.statements import statement_reader, statement_writer
from moorage.storage.blobs.filesystem import WRITEBACK_BYTES, release_written, start_writeback
from moorage.storage.metadata.schema import UploadSession

_UUID_LENGTH = 36
_MAX_RUNNING_HASHES = 10_000
LOCK_WAIT_SECONDS = 1.0  # outlasts a collector's check of the upload, not a concurrent request
MIN_PART_BYTES = 5 * 1024 * 1024
PREFERRED_PART_BYTES = 10 * 1024 * 1024
MAX_WRITE_CHUNKS = 512  # below every system's IOV_MAX (1024 on Linux)


# The session (if any) named by an upload id, with its repository; no row when the repository
# does not exist, NULL columns when it does but the session does not (or is another's).
_SESSION = (
    "SELECT r.id, s.id, s.repository_id, s.small_part FROM repositories r"
    " LEFT JOIN upload_sessions s ON s.repository_id = r.id AND s.id = :upload_id"
    " WHERE r.registry_id = :registry_id AND r.name = :name"
)
_INSERT_SESSION = (
    "INSERT INTO upload_sessions (id, repository_id, size_bytes, created_at, updated_at, small_part)"
    " VALUES (:upload_id, :repository_id, 0, :now, :now, :small_part)"
)
_SESSION_OWNER = "SELECT repository_id FROM upload_sessions WHERE id = :upload_id"
_DELETE_SESSION = "DELETE FROM upload_sessions WHERE id = :upload_id"
_RECORD_PROGRESS = "UPDATE upload_sessions SET size_bytes = :size_bytes, updated_at = :now WHERE id = :upload_id"


@dataclass(frozen=True)
class _Session:
    id: str
    repository_id: int
    small_part: bool


@dataclass
class _RunningHash:
    hasher: hashlib._Hash
    offset: int


class Append:
    """An exclusive append to one upload session; use as a context manager.

    ``write`` hashes and writes bytes (blocking I/O: call it off the event loop); leaving the
    block normally records the new size, leaving it by an exception cuts the data back to
    where it was, so a failed chunk leaves no trace.
    """

    def __init__(self, service: UploadService, upload_id: str, fd: int, start: int) -> None:
        self._service = service
        self.upload_id = upload_id
        self._fd = fd
        self.start = start
        self.size_bytes = start
        # Writeback was started up to the window boundary at or before ``start`` and released
        # up to the boundary a window earlier (by the appends before this one).
        self._writeback_from = start - start % WRITEBACK_BYTES
        self._released_from = max(0, self._writeback_from - WRITEBACK_BYTES)
        # False when the same request completes the upload right after: its session row is
        # deleted then, so recording the new size would be a wasted write transaction.
        self.record_progress = True
        running = service._hashes.pop(upload_id, None)
        self._hasher = running.hasher if running and running.offset == start else None

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data`` (any length) to the upload."""
        self.write_chunks([data])

    def write_chunks(self, chunks: Sequence[bytes | memoryview]) -> None:
        """Append the chunks, in order: :meth:`hash_chunks`, then :meth:`store_chunks`."""
        self.hash_chunks(chunks)
        self.store_chunks(chunks)

    @property
    def hashing(self) -> bool:
        """Whether this append feeds a running hash (False when the upload's hash is not in this
        process, as after an append elsewhere: its completion hashes the stored data)."""
        return self._hasher is not None

    def hash_chunks(self, chunks: Sequence[bytes | memoryview]) -> None:
        """Feed the chunks, in order, to the upload's running hash (nothing when the upload has
        none in this process: its completion hashes the stored data).

        The two halves of an append, this and :meth:`store_chunks`, may run at the same time
        in two threads, each given the chunks in the order they arrived; the chunks must not
        change meanwhile.
        """
        if self._hasher is not None:
            for chunk in chunks:
                self._hasher.update(chunk)

    def store_chunks(self, chunks: Sequence[bytes | memoryview]) -> None:
        """Write the chunks, in order, after what the upload holds, with one ``writev`` (at most
        ``MAX_WRITE_CHUNKS`` chunks per call; no copy into one buffer first), and count them
        in ``size_bytes``; the writeback of a large upload is started as it grows."""
        pending = [memoryview(chunk) for chunk in chunks if len(chunk)]
        self.size_bytes += sum(len(chunk) for chunk in pending)
        while pending:
            written = os.writev(self._fd, pending[:MAX_WRITE_CHUNKS])
            while pending and written >= len(pending[0]):
                written -= len(pending.pop(0))
            if written:
                pending[0] = pending[0][written:]
        # Writeback runs in windows of WRITEBACK_BYTES aligned to the start of the file, so
        # successive appends (PATCH after PATCH) continue the same windows.
        boundary = self.size_bytes - self.size_bytes % WRITEBACK_BYTES
        if boundary > self._writeback_from:
            # The windows sent to disk before were written a window ago (or nearly): they leave
            # the page cache (release_written says why).
            release_written(self._fd, self._released_from,
                            self._writeback_from - self._released_from)
            self._released_from = self._writeback_from
            start_writeback(self._fd, self._writeback_from, boundary - self._writeback_from)
            self._writeback_from = boundary

    def __enter__(self) -> Append:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        try:
            if exc_type is not None:
                os.ftruncate(self._fd, self.start)
                self.size_bytes = self.start
            else:
                if self.record_progress:
                    self._service._finish_append(self)
                if self._hasher is not None:
                    if len(self._service._hashes) > _MAX_RUNNING_HASHES:
                        self._service._hashes.clear()  # abandoned or finished elsewhere
                    self._service._hashes[self.upload_id] = _RunningHash(
                        self._hasher, self.size_bytes
                    )
        finally:
            os.close(self._fd)


class UploadService:
    """Start, append to, complete, inspect and cancel upload sessions."""

    def __init__(self, context: RegistryContext) -> None:
        self.context = context
        self._hashes: dict[str, _RunningHash] = {}

    def start(self, repository_name: str, *, wait_for_writer: bool = True) -> str:
        """Open a new, empty upload session in the repository.

        Args:
            wait_for_writer: False for a caller on the event loop: start the session only if
                the SQLite writers' turn is free now.

        Returns:
            the upload id (a UUID string).

        Raises:
            RepositoryNotFound: no such repository (``NAME_UNKNOWN``).
            WriterBusy: with ``wait_for_writer=False``, the turn is held elsewhere (nothing
                was started).
        """
        upload_id = str(uuid.uuid4())
        with statement_writer(self.context.database).transaction(wait=wait_for_writer) as connection:
            repository_id = self.context.repository_id(connection, repository_name, keep=True)
            now = self.context.clock.now()
            self.context.blobs.create_upload(upload_id)
            statements.execute(connection, _INSERT_SESSION, {
                "upload_id": upload_id, "repository_id": repository_id, "now": now,
                "small_part": False})
        self._hashes[upload_id] = _RunningHash(hashlib.sha256(), 0)
        return upload_id

    def size(self, repository_name: str, upload_id: str) -> int:
        """Bytes received so far by the session.

        Raises:
            RepositoryNotFound, UploadNotFound (``BLOB_UPLOAD_UNKNOWN``).
        """
        upload_id = self._session(repository_name, upload_id).id
        size = self.context.blobs.upload_size(upload_id)
        if size is None:
            raise errors.UploadNotFound(f"upload {upload_id} is unknown")
        return size

    def append(self, repository_name: str, upload_id: str, start: int | None) -> Append:
        """Begin an exclusive append to the session.

        Args:
            start: the offset the client says its bytes begin at (``Content-Range`` start, or
                ECR ``partFirstByte``); None to append wherever the data ends.

        Raises:
            RepositoryNotFound, UploadNotFound.
            UploadOffsetMismatch: ``start`` is not the current size, or another request is
                appending to the same session (OCI 416 ``BLOB_UPLOAD_INVALID``).
        """
        upload_id = self._session(repository_name, upload_id).id
        fd = self._exclusive(upload_id)
        try:
            size = os.fstat(fd).st_size
            if start is not None and start != size:
                raise errors.UploadOffsetMismatch(
                    f"chunk starts at byte {start} but the upload holds {size} bytes", size
                )
        except BaseException:
            os.close(fd)
            raise
        return Append(self, upload_id, fd, size)

    def append_part(self, repository_name: str, upload_id: str, first_byte: int, last_byte: int,
                    data: bytes) -> int:
        """ECR UploadLayerPart: append bytes ``first_byte``..``last_byte`` (inclusive).

        Returns:
            the last byte index now held.

        Raises:
            RepositoryNotFound, UploadNotFound.
            UploadOffsetMismatch: the part does not start right after the bytes held, its range
                is inverted, or its length differs from the range (``InvalidLayerPartException``
                with ``lastValidByteReceived`` = ``size_bytes`` - 1).
        """
        if last_byte < first_byte or len(data) != last_byte - first_byte + 1:
            size = self.size(repository_name, upload_id)
            raise errors.UploadOffsetMismatch(
                f"The layer part covers bytes {first_byte}-{last_byte} but carries {len(data)} bytes",
                size,
            )
        upload_id = upload_id.lower()
        with self.append(repository_name, upload_id, first_byte) as append:
            append.write(data)
        with self.context.database.transaction() as session:
            # A part smaller than the minimum that is followed by another part was not the last.
            session.execute(update(UploadSession).where(
                UploadSession.id == upload_id, UploadSession.last_part_bytes < MIN_PART_BYTES,
            ).values(small_part=True))
            session.execute(update(UploadSession).where(UploadSession.id == upload_id).values(
                last_part_bytes=len(data)))
        return append.size_bytes - 1

    def complete_layer(self, repository_name: str, upload_id: str, digest: str) -> bool:
        """ECR CompleteLayerUpload: check the parts, then :meth:`complete`.

        Returns:
            True when the blob is new to the repository.

        Raises:
            RepositoryNotFound, UploadNotFound, EmptyUpload, LayerPartTooSmall, InvalidDigest,
            DigestMismatch (``InvalidLayerException``), LayerAlreadyExists (the session is
            discarded; clients treat this as success).
        """
        row = self._session(repository_name, upload_id)
        upload_id = row.id
        size = self.context.blobs.upload_size(upload_id)
        if size is None:  # collected as abandoned meanwhile
            raise errors.UploadNotFound(f"upload {upload_id} is unknown")
        if size == 0:
            self._end(upload_id)
            raise errors.EmptyUpload(f"The upload with id '{upload_id}' contains no layer parts")
        if row.small_part:
            self._end(upload_id)
            raise errors.LayerPartTooSmall(
                f"Layer parts other than the last must be at least {MIN_PART_BYTES} bytes"
            )
        _size, newly_linked = self.complete(repository_name, upload_id, digest)
        if not newly_linked:
            raise errors.LayerAlreadyExists(
                f"The layer '{digest}' already exists in the repository with name "
                f"'{repository_name}' in registry with id '{self.context.registry_id}'"
            )
        return True

    def complete(self, repository_name: str, upload_id: str, digest: str,
                 final_chunk: bytes = b"") -> tuple[int, bool]:
        """Append ``final_chunk`` (a small last chunk sent with the completing request, if
        any), verify the session's bytes against ``digest``, publish the blob and link it.

        The session ends either way: on a digest mismatch its data is discarded.

        Returns:
            (the blob's size in bytes, True when the link to the repository is new).

        Raises:
            InvalidDigest: malformed digest (``DIGEST_INVALID``).
            RepositoryNotFound, UploadNotFound.
            DigestMismatch: the bytes hash to another digest (``DIGEST_INVALID``).
        """
        parse_digest(digest)
        upload_id = self._session(repository_name, upload_id).id
        # Hold the upload's lock from hashing to publication: no append can slip in between.
        fd = self._exclusive(upload_id)
        try:
            size = os.fstat(fd).st_size
            if final_chunk:  # appended under the lock this call holds (a duplicate descriptor)
                with Append(self, upload_id, os.dup(fd), size) as append:
                    append.record_progress = False
                    append.write(final_chunk)
                size = append.size_bytes
            running = self._hashes.pop(upload_id, None)
            try:
                if running is not None and running.offset == size:
                    hasher = running.hasher
                else:
                    hasher = self.context.blobs.hash_upload(upload_id)
                actual = "sha256:" + hasher.hexdigest()
                if actual != digest:
                    self._end(upload_id)
                    raise errors.DigestMismatch(
                        f"the uploaded content has digest {actual}, not {digest}"
                    )
                # Durable before visible, and outside the transaction so writers do not queue
                # on it.
                self.context.blobs.sync_upload(upload_id)
            except FileNotFoundError:  # discarded meanwhile (its repository deleted with force)
                raise errors.UploadNotFound(f"upload {upload_id} is unknown") from None
            newly_linked = self._publish(repository_name, upload_id, digest, size)
        finally:
            os.close(fd)
        return size, newly_linked

    def _publish(self, repository_name: str, upload_id: str, digest: str, size: int) -> bool:
        # A blob no file holds yet is renamed into place, and its directory entry made durable,
        # before the transaction: the directory fsync is the slowest step and must not hold the
        # writers' turn (SQLite) that every other push waits for. Nothing can collect the new
        # file meanwhile: the collector deletes only files of rows it deletes (this blob has no
        # row, or one whose file the collector already removed), and the orphan sweep only
        # files an hour old (a rename refreshes the ctime). Inside the transaction the blob row
        # is claimed and the file checked before the link makes the blob visible.
        #
        # A blob whose file exists keeps the older order: take the blob row (insert or lock it)
        # first, then publish, then link, all in one transaction, so a collector deleting the
        # same blob either finished before (we publish afresh) or waits for us (and then finds
        # the new link and keeps the blob). The session row is locked too, so a collector of
        # abandoned uploads cannot remove the data being published.
        blobs = self.context.blobs
        try:
            placed = blobs.place_new_upload(upload_id, digest)
        except FileNotFoundError:
            raise errors.UploadNotFound(f"upload {upload_id} is unknown") from None
        with statement_writer(self.context.database).transaction() as connection:
            # Repository, then session: the order a repository delete takes them in.
            repository_id = self.context.repository_id(connection, repository_name, keep=True)
            owner = statements.one(connection, statements.locking(_SESSION_OWNER, connection),
                                   {"upload_id": upload_id})
            if owner is None or owner[0] != repository_id:
                raise errors.UploadNotFound(f"upload {upload_id} is unknown")
            now = self.context.clock.now()
            claim_blob(connection, digest, size, now)
            if placed:
                if blobs.blob_size(digest) != size:  # collected with a stale row meanwhile
                    raise errors.UploadNotFound(f"upload {upload_id} is unknown")
            else:
                try:
                    blobs.publish_upload(upload_id, digest)
                except FileNotFoundError:
                    raise errors.UploadNotFound(f"upload {upload_id} is unknown") from None
            newly_linked = link_blob(connection, repository_id, digest, now)
            statements.execute(connection, _DELETE_SESSION, {"upload_id": upload_id})
        return newly_linked

    def cancel(self, repository_name: str, upload_id: str) -> None:
        """End the session and discard its data.

        Raises:
            RepositoryNotFound, UploadNotFound.
        """
        self._end(self._session(repository_name, upload_id).id)

    # -- internals ---------------------------------------------------------------------------

    def _exclusive(self, upload_id: str) -> int:
        """The upload's data file descriptor, exclusively locked (see
        :meth:`FilesystemBlobStore.lock_upload`)."""
        try:
            return self.context.blobs.lock_upload(upload_id, wait_seconds=LOCK_WAIT_SECONDS)
        except FileNotFoundError:
            raise errors.UploadNotFound(f"upload {upload_id} is unknown") from None
        except BlockingIOError:
            size = self.context.blobs.upload_size(upload_id) or 0
            raise errors.UploadOffsetMismatch(
                "another request is writing to this upload", size) from None

    def _session(self, repository_name: str, upload_id: str) -> _Session:
        if len(upload_id) != _UUID_LENGTH:
            raise errors.UploadNotFound(f"upload {upload_id[:64]} is unknown")
        try:
            uuid.UUID(upload_id)
        except ValueError:
            raise errors.UploadNotFound(f"upload {upload_id[:64]} is unknown") from None
        upload_id = upload_id.lower()
        row = statement_reader(self.context.database).one(_SESSION, {
            "registry_id": self.context.registry_id, "name": repository_name,
            "upload_id": upload_id})
        if row is None:
            raise errors.RepositoryNotFound(repository_name, self.context.registry_id)
        if row[1] is None:
            raise errors.UploadNotFound(
                f"The upload with id '{upload_id}' does not exist in the repository with "
                f"name '{repository_name}'"
            )
        return _Session(row[1], row[2], bool(row[3]))

    def _finish_append(self, append: Append) -> None:
        with statement_writer(self.context.database).transaction() as session:
            statements.execute(session, _RECORD_PROGRESS, {
                "upload_id": append.upload_id, "size_bytes": append.size_bytes,
                "now": self.context.clock.now()})

    def _end(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        with statement_writer(self.context.database).transaction() as connection:
            statements.execute(connection, _DELETE_SESSION, {"upload_id": upload_id})
        self.context.blobs.delete_upload(upload_id)
