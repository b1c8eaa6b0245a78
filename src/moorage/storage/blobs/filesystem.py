"""The filesystem blob store: content-addressed blobs and upload files under a data directory.

Durability: an upload is fsynced once when it completes (not per chunk), renamed into its
content-addressed home, and the directory entry is fsynced; only then does the caller insert the
metadata row that makes the blob visible. A crash before that leaves an unreferenced file that
housekeeping removes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import hashlib
import os
import time
from pathlib import Path

from moorage.storage.blobs import paths

READ_CHUNK_BYTES = 1024 * 1024
WRITEBACK_BYTES = 8 * 1024 * 1024  # start writing an upload to disk every this many bytes
# <linux/fs.h> sync_file_range flags: wait for writeback already under way, start it for dirty
# pages, wait for it to finish.
_SYNC_FILE_RANGE_WAIT_BEFORE = 1
_SYNC_FILE_RANGE_WRITE = 2
_SYNC_FILE_RANGE_WAIT_AFTER = 4


def _load_sync_file_range():  # type: ignore[no-untyped-def]
    """libc's ``sync_file_range`` (Linux), or None where the C library lacks it."""
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes at ``offset`` of ``fd`` to disk now,
    without waiting (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``).

    Not a durability step: the fsync at completion still is. It only keeps the dirty pages of a
    large upload from piling up until that fsync, so the disk works while bytes still arrive and
    the final fsync has little left to do. A no-op where the call is unavailable; its errors are
    ignored (the fsync reports real I/O errors).
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def release_written(fd: int, offset: int, length: int) -> None:
    """Wait until ``length`` bytes at ``offset`` of ``fd`` are written to disk, then drop them
    from the page cache (``sync_file_range`` with wait, then ``POSIX_FADV_DONTNEED``).

    Used for the part of a large upload that an earlier :func:`start_writeback` sent to disk:
    a pushed layer is read again rarely soon after, and keeping it cached only evicts hotter
    data. It also keeps uploads fast where fresh memory is dear: on this project's virtual
    machines every page the cache takes for the first time costs a fault in the hypervisor,
    and a push that keeps its layer cached wrote 4–10 times slower than one that lets the cache
    reuse its pages (docs/performance.md, "Large pushes"). Not a durability step (the fsync at
    completion is); a no-op where ``sync_file_range`` is unavailable.

    Raises:
        OSError: the write-out failed (EIO, ENOSPC…). It must reach the caller: waiting on
            writeback reports a write error once per open file and marks it seen, so the
            completing fsync (on another descriptor) would no longer report it.
    """
    if _sync_file_range is None or length <= 0:
        return
    flags = _SYNC_FILE_RANGE_WAIT_BEFORE | _SYNC_FILE_RANGE_WRITE | _SYNC_FILE_RANGE_WAIT_AFTER
    if _sync_file_range(fd, offset, length, flags) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"writing the upload to disk failed: {os.strerror(number)}")
    _drop_cached(fd, offset, length)


def _drop_cached(fd: int, offset: int, length: int) -> None:
    """Drop written-back pages of ``fd`` from the page cache (advice: errors are ignored)."""
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass


class FilesystemBlobStore:
    """Blobs and uploads under ``root`` (see :mod:`moorage.storage.blobs.paths`)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        paths.uploads_dir(root).mkdir(parents=True, exist_ok=True)
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    # -- published blobs -------------------------------------------------------------------

    def blob_size(self, digest: str) -> int | None:
        """Size in bytes of the published blob, or None when it is absent."""
        try:
            return paths.blob_path(self.root, digest).stat().st_size
        except FileNotFoundError:
            return None

    def blob_path(self, digest: str) -> Path:
        """Filesystem path of a published blob (for zero-copy responses)."""
        return paths.blob_path(self.root, digest)

    def delete_blob(self, digest: str) -> None:
        """Remove a published blob; absent is fine."""
        paths.blob_path(self.root, digest).unlink(missing_ok=True)

    def iter_blob_digests(self):  # type: ignore[no-untyped-def]
        """Yield the digest of every published blob (for housekeeping)."""
        base = self.root / "blobs" / "sha256"
        for prefix in sorted(base.iterdir()):
            for path in sorted(prefix.iterdir()):
                yield "sha256:" + path.name

    # -- uploads ---------------------------------------------------------------------------

    def create_upload(self, upload_id: str) -> None:
        """Create the empty data file of a new upload."""
        paths.upload_path(self.root, upload_id).touch(exist_ok=False)

    def upload_size(self, upload_id: str) -> int | None:
        """Bytes received so far by the upload, or None when there is no such upload."""
        try:
            return paths.upload_path(self.root, upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def lock_upload(self, upload_id: str, wait_seconds: float = 0.0) -> int:
        """An appending file descriptor on the upload's data, holding its exclusive lock; the
        caller closes it (which releases the lock).

        Every writer and the completer take this lock, and each checks after locking that the
        path still names the locked file, so no write can land in a file that was published
        (renamed) or discarded meanwhile.

        Args:
            wait_seconds: how long to retry while another holder has the lock (a collector's
                check takes milliseconds; a concurrent request holds it for its whole body).

        Raises:
            FileNotFoundError: no such upload (or it ended while we waited).
            BlockingIOError: another holder kept the lock for longer than ``wait_seconds``.
        """
        path = paths.upload_path(self.root, upload_id)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        deadline = time.monotonic() + wait_seconds
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.005)
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def hash_upload(self, upload_id: str) -> hashlib._Hash:
        """sha256 over the whole upload, read back from storage (the slow, always-correct path)."""
        hasher = hashlib.sha256()
        with open(paths.upload_path(self.root, upload_id), "rb") as handle:
            while chunk := handle.read(READ_CHUNK_BYTES):
                hasher.update(chunk)
        return hasher

    def sync_upload(self, upload_id: str) -> None:
        """Flush the upload's data to disk (once, before publication; never per chunk); a large
        upload (``WRITEBACK_BYTES`` or more) is then dropped from the page cache.

        Raises:
            FileNotFoundError: no such upload.
        """
        fd = os.open(paths.upload_path(self.root, upload_id), os.O_RDONLY)
        try:
            os.fsync(fd)
            size = os.fstat(fd).st_size
            if size >= WRITEBACK_BYTES:  # written by the fsync: a large upload leaves the cache
                _drop_cached(fd, 0, size)
        finally:
            os.close(fd)

    def place_new_upload(self, upload_id: str, digest: str) -> bool:
        """Make the verified, synced upload the blob ``digest`` if no file holds that blob yet:
        rename it into place and fsync the directory. Returns False (and does nothing) when a
        file for ``digest`` exists already — :meth:`publish_upload` then decides inside the
        caller's transaction.

        Raises:
            FileNotFoundError: no such upload.
        """
        target = paths.blob_path(self.root, digest)
        if target.exists():
            return False
        _ensure_directory(target.parent)
        os.replace(paths.upload_path(self.root, upload_id), target)
        _fsync_directory(target.parent)
        return True

    def publish_upload(self, upload_id: str, digest: str) -> None:
        """Make the verified, synced upload the blob ``digest``: rename, fsync the directory.

        "Already there" is success: the existing file has the same content by construction, and
        the upload file is removed.
        """
        source = paths.upload_path(self.root, upload_id)
        target = paths.blob_path(self.root, digest)
        try:
            existing = target.stat().st_size
        except FileNotFoundError:
            existing = None
        if existing is not None and existing == source.stat().st_size:
            source.unlink(missing_ok=True)
            return
        # Absent, or damaged (a size that cannot be this content): our verified copy goes in.
        _ensure_directory(target.parent)
        os.replace(source, target)
        _fsync_directory(target.parent)

    def delete_upload(self, upload_id: str) -> None:
        """Remove an upload's data; absent is fine."""
        paths.upload_path(self.root, upload_id).unlink(missing_ok=True)


def _ensure_directory(directory: Path) -> None:
    """Create ``directory`` if missing, with its entry in its parent made durable (the blob's
    own directory fsync covers the blob's entry, not a new directory's entry in its parent)."""
    if directory.is_dir():
        return
    directory.mkdir(parents=True, exist_ok=True)  # exists: a concurrent publication made it
    _fsync_directory(directory.parent)  # either way, before our blob's entry counts on it


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
