"""Storage-level behaviour that the HTTP tests cannot pin down directly."""

from __future__ import annotations

import fcntl
import hashlib
import sqlite3
import os
import threading
import time

import pytest
from sqlalchemy.exc import IntegrityError

from moorage import errors
from moorage.config import Settings
from moorage.registry.pulls import PullReads
from moorage.registry.repositories import RepositorySettings
from moorage.services import build_services
from moorage.storage.blobs import paths
from moorage.storage.metadata import statements
from moorage.storage.metadata.database import (
    WAL_BACKSTOP_PAGES,
    Database,
    WalCheckpointer,
    WriterQueue,
)


def _turn_is_free(lock_path) -> bool:  # type: ignore[no-untyped-def]
    """What another process sees: can it take the writers' turn right now?"""
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_sqlite_writers_take_turns_across_processes_and_threads(tmp_path):
    """A write transaction holds the writers' turn (a flock other processes wait on) from
    before BEGIN to after COMMIT; a second writer waits for it instead of failing."""
    url = f"sqlite:///{tmp_path / 'moorage.db'}"
    lock_path = tmp_path / "moorage.db.writer-lock"
    first, second = Database(url), Database(url)
    with first.write_connection() as connection:
        connection.exec_driver_sql("CREATE TABLE facts (value INTEGER)")
        assert not _turn_is_free(lock_path)
    assert _turn_is_free(lock_path)
    with pytest.raises(RuntimeError), first.transaction():
        raise RuntimeError("rolled back")
    assert _turn_is_free(lock_path)  # released on rollback too

    order: list[str] = []
    entered = threading.Event()

    def hold_the_turn() -> None:
        with first.write_connection() as connection:
            entered.set()
            connection.exec_driver_sql("INSERT INTO facts VALUES (1)")
            time.sleep(0.3)
            order.append("first committed")

    holder = threading.Thread(target=hold_the_turn)
    holder.start()
    entered.wait(5)
    with second.write_connection() as connection:
        order.append("second started")
        connection.exec_driver_sql("INSERT INTO facts VALUES (2)")
    holder.join()
    assert order == ["first committed", "second started"]
    with second.read_connection() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM facts").scalar() == 2
    first.dispose()
    second.dispose()


def test_writer_turn_without_waiting(tmp_path):
    """``wait=False`` takes the writers' turn only if it is free now: WriterBusy (nothing
    started) while another thread or another process holds it; re-entrant within the holder."""
    from moorage.storage.metadata.database import WriterBusy

    url = f"sqlite:///{tmp_path / 'moorage.db'}"
    lock_path = tmp_path / "moorage.db.writer-lock"
    database = Database(url)
    writer = statements.statement_writer(database)
    with writer.transaction(wait=False) as connection:
        statements.execute(connection, "CREATE TABLE facts (value INTEGER)", {})
        with database.writer_turn(wait=False):  # re-entrant in the holding thread
            pass
    assert _turn_is_free(lock_path)

    held, release = threading.Event(), threading.Event()

    def hold_in_another_thread() -> None:
        with database.writer_turn():
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold_in_another_thread)
    holder.start()
    held.wait(5)
    with pytest.raises(WriterBusy), writer.transaction(wait=False) as connection:
        statements.execute(connection, "INSERT INTO facts VALUES (1)", {})
    release.set()
    holder.join()

    other_process = os.open(lock_path, os.O_RDWR)  # another process's flock on the turn
    fcntl.flock(other_process, fcntl.LOCK_EX)
    with pytest.raises(WriterBusy), writer.transaction(wait=False) as connection:
        statements.execute(connection, "INSERT INTO facts VALUES (2)", {})
    fcntl.flock(other_process, fcntl.LOCK_UN)
    os.close(other_process)
    with writer.transaction(wait=False) as connection:  # the turn was left free
        statements.execute(connection, "INSERT INTO facts VALUES (3)", {})
    assert statements.statement_reader(database).all("SELECT value FROM facts", {}) == [(3,)]
    database.dispose()


def test_release_written_reports_a_failed_write_out(tmp_path):
    """A failed wait for writeback raises (the error would otherwise be marked seen and missed
    by the completing fsync)."""
    from moorage.storage.blobs.filesystem import release_written

    fd = os.open(tmp_path / "upload", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"x" * 8192)
    release_written(fd, 0, 8192)
    os.close(fd)
    with pytest.raises(OSError):
        release_written(fd, 0, 8192)  # a closed descriptor: EBADF


def test_raw_statements_raise_sqlalchemy_errors_and_roll_back(fresh_database_url):
    """A statement run on the driver's cursor inside a SQLAlchemy transaction fails with the
    exception SQLAlchemy itself would raise, and the transaction is rolled back whole."""
    url = fresh_database_url
    database = Database(url)
    with database.write_connection() as connection:
        connection.exec_driver_sql("CREATE TABLE facts (value INTEGER PRIMARY KEY)")
    with pytest.raises(IntegrityError), database.write_connection() as connection:
        assert statements.execute(connection, "INSERT INTO facts VALUES (:value)", {"value": 1}) == 1
        statements.execute(connection, "INSERT INTO facts VALUES (:value)", {"value": 1})
    with pytest.raises(IntegrityError), database.write_connection() as connection:
        statements.execute_many(connection, "INSERT INTO facts VALUES (:value)",
                                [{"value": 5}, {"value": 5}])
    with database.write_connection() as connection:
        assert statements.one(connection, "SELECT count(*) FROM facts", {}) == (0,)
        assert statements.one(connection, statements.locking(
            "SELECT value FROM facts WHERE value = :value", connection), {"value": 1}) is None
    database.dispose()


def test_statement_reader_connections_close_with_the_database(tmp_path):
    """The per-thread SQLite connections of the statement reader are closed by
    ``Database.dispose()``; a thread reading afterwards gets a new one."""
    database = Database(f"sqlite:///{tmp_path / 'moorage.db'}")
    with database.write_connection() as connection:
        connection.exec_driver_sql("CREATE TABLE facts (value INTEGER)")
        connection.exec_driver_sql("INSERT INTO facts VALUES (7)")
    reader = statements.statement_reader(database)
    seen = []

    def read() -> None:
        seen.append(reader.one("SELECT value FROM facts", {}))

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    read()
    opened = list(reader._sqlite._connections)
    assert seen == [(7,)] * 4 and len(opened) == 4
    database.dispose()
    for connection in opened:
        with pytest.raises(sqlite3.ProgrammingError):  # closed
            connection.execute("SELECT 1")
    read()
    assert seen[-1] == (7,)
    database.dispose()


def test_wal_is_checkpointed_in_the_background_not_by_commits(tmp_path):
    """Commits leave the WAL to the checkpoint thread (a commit checkpoints only past the
    backstop): ~2 MiB committed, under SQLite's own threshold, reaches the database file with no
    further commit; the thread ends with the database. Writers run with secure_delete off."""

    def checkpointers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "moorage-wal-checkpoint"}

    others = checkpointers()
    path = tmp_path / "moorage.db"
    database = Database(f"sqlite:///{path}")
    ours = checkpointers() - others
    assert len(ours) == 1
    writer = statements.statement_writer(database)
    with writer.transaction() as connection:
        assert connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (WAL_BACKSTOP_PAGES,)
        assert connection.execute("PRAGMA secure_delete").fetchone() == (0,)
        statements.execute(connection, "CREATE TABLE facts (value BLOB)", {})
    with database.write_connection() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == WAL_BACKSTOP_PAGES
        assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 0
    before = os.path.getsize(path)
    deadline = time.monotonic() + 10
    for _ in range(8):  # 8 commits of 64 × 4 KiB: 512 pages, under SQLite's default 1,000
        with writer.transaction() as connection:
            statements.execute_many(connection, "INSERT INTO facts VALUES (:value)",
                                    [{"value": os.urandom(4000)} for _ in range(64)])
    while os.path.getsize(path) < before + 2_000_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.path.getsize(path) >= before + 2_000_000
    database.dispose()
    assert not any(thread.is_alive() for thread in ours)


def test_wal_checkpointer_survives_a_missing_file_and_never_creates_it(tmp_path):
    """A checkpoint that fails (here: no database file yet) is logged and tried again at the
    next tick; the thread never creates the file, and checkpoints once the database exists."""
    path = tmp_path / "later.db"
    checkpointer = WalCheckpointer(str(path), WriterQueue(None), interval_seconds=0.05)
    try:
        time.sleep(0.3)  # several failed ticks
        assert not path.exists()
        writer = sqlite3.connect(path, isolation_level=None)
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
        writer.execute("CREATE TABLE facts (value BLOB)")
        before = os.path.getsize(path)
        for _ in range(64):
            writer.execute("INSERT INTO facts VALUES (?)", (os.urandom(4000),))
        deadline = time.monotonic() + 10
        while os.path.getsize(path) < before + 200_000 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.path.getsize(path) >= before + 200_000  # copied in by the thread
        writer.close()
    finally:
        checkpointer.close()


def test_wal_starts_over_under_steady_writes(tmp_path, monkeypatch):
    """With writers committing all the time, each background checkpoint still copies the whole
    WAL (its last pass holds the writers' turn), so the WAL file is reused from its start and
    stays a fraction of what was written, instead of growing to the backstop."""
    from moorage.storage.metadata import database as database_module

    monkeypatch.setattr(database_module, "WAL_CHECKPOINT_INTERVAL_SECONDS", 0.2)
    path = tmp_path / "moorage.db"
    database = Database(f"sqlite:///{path}")
    writer = statements.statement_writer(database)
    with writer.transaction() as connection:
        statements.execute(connection, "CREATE TABLE facts (value BLOB)", {})
    written = 0
    deadline = time.monotonic() + 20
    while written < 24_000_000 and time.monotonic() < deadline:  # commits of 8 KB, ~3 s
        with writer.transaction() as connection:
            statements.execute(connection, "INSERT INTO facts VALUES (:value)",
                               {"value": os.urandom(8000)})
        written += 8000
        time.sleep(0.0005)  # a server's writers leave gaps (requests arrive, answers go out)
    assert written >= 8_000_000
    assert os.path.getsize(str(path) + "-wal") < written / 3
    database.dispose()


def test_statement_writer_commits_or_rolls_back_whole(fresh_database_url):
    """A StatementWriter transaction (own sqlite3 connection on SQLite, SQLAlchemy's on
    PostgreSQL) commits when its block ends and rolls back whole when it raises; driver errors
    surface as SQLAlchemy's exceptions; foreign keys are enforced."""
    database = Database(fresh_database_url)
    with database.write_connection() as connection:
        connection.exec_driver_sql("CREATE TABLE parents (id INTEGER PRIMARY KEY)")
        connection.exec_driver_sql(
            "CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parents (id))")
    writer = statements.statement_writer(database)
    reader = statements.statement_reader(database)
    with writer.transaction() as connection:
        statements.execute(connection, "INSERT INTO parents VALUES (:id)", {"id": 1})
    assert reader.all("SELECT id FROM parents", {}) == [(1,)]
    with pytest.raises(RuntimeError), writer.transaction() as connection:
        statements.execute(connection, "INSERT INTO parents VALUES (:id)", {"id": 2})
        raise RuntimeError("rolled back")
    with pytest.raises(IntegrityError), writer.transaction() as connection:
        statements.execute(connection, "INSERT INTO parents VALUES (:id)", {"id": 3})
        statements.execute(connection, "INSERT INTO children VALUES (1, :parent)", {"parent": 99})
    with pytest.raises(IntegrityError), writer.transaction() as connection:
        statements.execute_many(connection, "INSERT INTO parents VALUES (:id)", [{"id": 4}, {"id": 4}])
    assert reader.all("SELECT id FROM parents ORDER BY id", {}) == [(1,)]
    assert reader.all("SELECT id FROM children", {}) == []
    database.dispose()


def test_new_blob_placed_before_the_transaction_and_checked_inside(tmp_path):
    """A new blob's file is renamed into place before the publishing transaction; if it is gone
    by the time the transaction checks (a collector acting on a stale row), the upload is
    refused (BLOB_UPLOAD_UNKNOWN) and the blob never becomes visible. A blob whose file exists
    already is published inside the transaction, as before."""
    services = build_services(Settings(data_dir=tmp_path, account_id="123456789012"))
    services.repositories.create("place", RepositorySettings())
    store = services.context.blobs
    content = b"placed before the transaction"
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    real_place = store.place_new_upload

    def place_then_lose(upload_id: str, blob_digest: str) -> bool:
        placed = real_place(upload_id, blob_digest)
        store.delete_blob(blob_digest)  # what a collector with a stale row would do
        return placed

    store.place_new_upload = place_then_lose  # type: ignore[method-assign]
    upload_id = services.uploads.start("place")
    with pytest.raises(errors.UploadNotFound):
        services.uploads.complete("place", upload_id, digest, content)
    with pytest.raises(errors.BlobNotFound):
        PullReads(services.context).blob_size("place", digest)

    store.place_new_upload = real_place  # type: ignore[method-assign]
    for expected_new_file in (True, False):  # the second push finds the file in place
        upload_id = services.uploads.start("place")
        assert store.blob_path(digest).exists() is not expected_new_file
        services.uploads.complete("place", upload_id, digest, content)
        assert PullReads(services.context).blob_size("place", digest) == len(content)
        assert store.blob_path(digest).read_bytes() == content
    services.close()


def test_migration_0004_fills_in_each_repository_image_count(fresh_database_url):
    """Revision 0004 adds ``repositories.image_count`` and sets it to the images each
    repository already holds (an upgraded registry enforces its image limit correctly)."""
    from alembic import command
    from alembic.config import Config

    from moorage.storage.metadata.database import MIGRATIONS

    database = Database(fresh_database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
    with database.write_connection() as connection:
        for repository_id, images in ((1, 3), (2, 0), (3, 1)):
            connection.exec_driver_sql(
                "INSERT INTO repositories (id, registry_id, name, created_at, image_tag_mutability,"
                " scan_on_push, encryption_type) VALUES"
                f" ({repository_id}, '123456789012', 'r{repository_id}', 0, 'MUTABLE', false, 'AES256')")
            for index in range(images):
                connection.exec_driver_sql(
                    "INSERT INTO images (repository_id, digest, media_type, content,"
                    " manifest_size_bytes, image_size_bytes, pushed_at) VALUES"
                    f" ({repository_id}, 'sha256:{index:064x}', 'm', '{{}}', 2, 2, 0)")
    database.migrate()
    reader = statements.statement_reader(database)
    assert reader.all("SELECT id, image_count FROM repositories ORDER BY id", {}) == [
        (1, 3), (2, 0), (3, 1)]
    database.dispose()


def test_migration_0005_makes_the_digest_and_subject_indexes_partial(fresh_database_url):
    """Revision 0005 indexes only manifest references by digest and only images with a subject
    (both backends), and its downgrade restores the full indexes."""
    from alembic import command
    from alembic.config import Config

    from moorage.storage.metadata.database import MIGRATIONS

    database = Database(fresh_database_url)
    reader = statements.statement_reader(database)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))

    def definitions() -> dict[str, str]:
        if database.is_sqlite:
            rows = reader.all("SELECT name, sql FROM sqlite_master WHERE name IN"
                              " ('ix_image_references_digest', 'ix_images_subject')", {})
        else:
            rows = reader.all("SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN"
                              " ('ix_image_references_digest', 'ix_images_subject')", {})
        return {name: " ".join(sql.split()) for name, sql in rows}

    def run(step, revision: str) -> None:  # type: ignore[no-untyped-def]
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            step(config, revision)

    database.migrate()
    partial = definitions()
    assert "WHERE" in partial["ix_images_subject"] and "IS NOT NULL" in partial["ix_images_subject"]
    assert "WHERE" in partial["ix_image_references_digest"]
    assert "'manifest'" in partial["ix_image_references_digest"]
    run(command.downgrade, "0004")
    assert all("WHERE" not in sql for sql in definitions().values()) and len(definitions()) == 2
    run(command.upgrade, "head")
    assert definitions() == partial
    database.dispose()


def _cached_bytes(path) -> int:  # type: ignore[no-untyped-def]
    """Bytes of ``path`` resident in the page cache (Linux ``mincore`` on a mapping of it)."""
    import ctypes
    import mmap

    size = os.path.getsize(path)
    page = mmap.PAGESIZE
    with open(path, "r+b") as handle, mmap.mmap(handle.fileno(), size) as mapping:
        pages = (size + page - 1) // page
        vector = (ctypes.c_ubyte * pages)()
        address = ctypes.addressof(ctypes.c_char.from_buffer(mapping))
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(size), vector) == 0
        resident = sum(1 for flag in vector if flag & 1) * page
        del address
    return resident


@pytest.mark.parametrize("patch_bytes", [1024 * 1024, 8 * 1024 * 1024])
def test_large_upload_leaves_the_page_cache_small_ones_stay(tmp_path, patch_bytes):
    """A large upload's windows leave the page cache once written back, and the rest after the
    final fsync (the published blob is intact and durable); a small blob stays cached. Appends
    of 1 MiB (many per window) and of 8 MiB (one window per append) both release."""
    services = build_services(Settings(data_dir=tmp_path, account_id="123456789012"))
    services.repositories.create("cache", RepositorySettings())
    store = services.context.blobs
    content = os.urandom(32 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    upload_id = services.uploads.start("cache")
    view = memoryview(content)
    for start in range(0, len(content), 4 * patch_bytes):  # a few appends, each of 4 writes
        with services.uploads.append("cache", upload_id, start) as append:
            for offset in range(start, min(start + 4 * patch_bytes, len(content)), patch_bytes):
                append.write(view[offset:offset + patch_bytes])
        if start >= 2 * 4 * patch_bytes:  # released as it goes, not only at the end
            assert _cached_bytes(paths.upload_path(store.root, upload_id)) < len(content) // 2
    services.uploads.complete("cache", upload_id, digest)
    path = store.blob_path(digest)
    assert _cached_bytes(path) == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest.split(":", 1)[1]

    small = os.urandom(64 * 1024)
    small_digest = "sha256:" + hashlib.sha256(small).hexdigest()
    services.uploads.complete("cache", services.uploads.start("cache"), small_digest, small)
    assert _cached_bytes(store.blob_path(small_digest)) == len(small)
    services.close()


def test_a_new_blob_directory_is_made_durable_in_its_parent(tmp_path, monkeypatch):
    """Publishing the first blob of a digest prefix creates the prefix directory; its entry in
    ``blobs/sha256`` is fsynced along with the blob's own entry, and only then."""
    from moorage.storage.blobs import filesystem

    synced: list[str] = []
    real_fsync_directory = filesystem._fsync_directory
    monkeypatch.setattr(filesystem, "_fsync_directory",
                        lambda directory: (synced.append(directory.name), real_fsync_directory(directory)))
    services = build_services(Settings(data_dir=tmp_path, account_id="123456789012"))
    services.repositories.create("dirs", RepositorySettings())
    content = b"first of its prefix"
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    prefix = digest.split(":", 1)[1][:2]
    services.uploads.complete("dirs", services.uploads.start("dirs"), digest, content)
    assert synced == ["sha256", prefix]  # the new directory's parent, then the directory
    synced.clear()
    other = next(c for c in (b"%d" % i for i in range(10_000))
                 if hashlib.sha256(c).hexdigest()[:2] == prefix and c != content)
    services.uploads.complete("dirs", services.uploads.start("dirs"),
                              "sha256:" + hashlib.sha256(other).hexdigest(), other)
    assert synced == [prefix]  # the prefix directory exists: only the blob's entry
    services.close()


class _FakeRequest:
    """The part of a Starlette request ``routes._receive`` reads: no headers, a body in parts."""

    headers: dict[str, str] = {}

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts

    async def stream(self):  # type: ignore[no-untyped-def]
        import asyncio

        for part in self.parts:
            yield part
            await asyncio.sleep(0)
        await asyncio.sleep(0)


class _FakeCall:
    """The part of a route's call ``routes._receive`` reads."""

    def __init__(self, services, name: str, parts: list[bytes]) -> None:  # type: ignore[no-untyped-def]
        self.services, self.request, self.name = services, _FakeRequest(parts), name

    def upload_headers(self, *_):  # type: ignore[no-untyped-def]
        return {}


def test_upload_continued_without_its_running_hash_is_hashed_from_disk(tmp_path, monkeypatch):
    """A PATCH to an upload whose running hash is not in this process (its earlier chunk went
    to another worker) only writes its buffers: no hashing work is started for them, and the
    completion hashes the stored bytes, so the right digest is accepted and a wrong one
    refused."""
    import asyncio

    from moorage.distribution import routes
    from moorage.registry import uploads

    hashed: list[int] = []
    real_hash_chunks = uploads.Append.hash_chunks
    monkeypatch.setattr(uploads.Append, "hash_chunks",
                        lambda self, chunks: (hashed.append(len(chunks)), real_hash_chunks(self, chunks)))
    services = build_services(Settings(data_dir=tmp_path / "data", account_id="123456789012"))
    services.repositories.create("elsewhere", RepositorySettings())
    first, rest = os.urandom(3000), [os.urandom(300_000), os.urandom(70_000)]
    content = first + b"".join(rest)

    def upload_continued_elsewhere() -> str:
        upload_id = services.uploads.start("elsewhere")
        with services.uploads.append("elsewhere", upload_id, 0) as append:
            append.write(first)
        services.uploads._hashes.clear()  # as in another worker process
        hashed.clear()
        size = asyncio.run(routes._receive(_FakeCall(services, "elsewhere", rest), upload_id, None))
        assert size == len(content) and hashed == []  # only written
        return upload_id

    with pytest.raises(errors.DigestMismatch):
        services.uploads.complete("elsewhere", upload_continued_elsewhere(),
                                  "sha256:" + hashlib.sha256(b"other").hexdigest())
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    assert services.uploads.complete("elsewhere", upload_continued_elsewhere(), digest) == (
        len(content), True)
    services.close()


@pytest.mark.parametrize("slow_half", ["store_chunks", "hash_chunks"])
@pytest.mark.parametrize("parts", [[b"y" * 100], [b"y" * (1024 * 1024)] * 3],
                         ids=["last buffer in flight", "double-buffered write in flight"])
def test_cancelled_upload_request_waits_for_its_write_before_closing(tmp_path, monkeypatch, parts,
                                                                     slow_half):
    """A request cancelled while worker threads hash and write one of its buffers (the last one,
    or one of the double-buffered ones; the write or the hash the slower) ends only after both
    have: the upload is then as before the request, and no byte lands in a file that reuses the
    closed descriptor."""
    import asyncio

    from moorage.distribution import routes
    from moorage.registry import uploads

    real_half = getattr(uploads.Append, slow_half)
    ended: list[float] = []

    def slow(self, chunks):  # type: ignore[no-untyped-def]
        time.sleep(0.4)
        try:
            return real_half(self, chunks)
        finally:
            ended.append(time.monotonic())

    monkeypatch.setattr(uploads.Append, slow_half, slow)

    services = build_services(Settings(data_dir=tmp_path / "data", account_id="123456789012"))
    services.repositories.create("cancel", RepositorySettings())
    upload_id = services.uploads.start("cancel")
    with services.uploads.append("cancel", upload_id, 0) as append:
        append.write(b"x" * 3000)

    async def cancel_midway() -> int:
        ended.clear()  # the setup's write above went through the slow half too
        task = asyncio.ensure_future(routes._receive(_FakeCall(services, "cancel", parts),
                                                     upload_id, None))
        await asyncio.sleep(0.15)  # a write is under way in a worker thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ended  # the slow half ended before the request did
        fd = os.open(tmp_path / "victim", os.O_RDWR | os.O_CREAT)  # may reuse the closed number
        await asyncio.sleep(0.6)
        os.close(fd)
        return os.path.getsize(tmp_path / "victim")

    assert asyncio.run(cancel_midway()) == 0
    assert services.uploads.size("cancel", upload_id) == 3000
    services.close()


def test_upload_start_racing_a_repository_delete(tmp_path, fresh_database_url):
    """A repository deleted (with force) while an upload session is being created waits for
    that creation and then removes the session with the repository: no foreign-key error (it
    was a 500 on PostgreSQL). A completion whose upload file the delete removed is
    BLOB_UPLOAD_UNKNOWN, not a 500."""
    services = build_services(Settings(data_dir=tmp_path / "data", account_id="123456789012",
                                       database_url=fresh_database_url))
    services.repositories.create("race/app", RepositorySettings())
    store = services.context.blobs
    real_create_upload = store.create_upload
    deleter: list[threading.Thread] = []

    def create_then_let_a_delete_run(upload_id: str) -> None:
        real_create_upload(upload_id)
        thread = threading.Thread(target=services.repositories.delete, args=("race/app", True))
        thread.start()
        deleter.append(thread)
        time.sleep(0.5)  # the delete commits now unless this transaction holds it off

    store.create_upload = create_then_let_a_delete_run  # type: ignore[method-assign]
    upload_id = services.uploads.start("race/app")
    deleter[0].join(30)
    assert not deleter[0].is_alive()
    with pytest.raises(errors.RepositoryNotFound):
        services.uploads.size("race/app", upload_id)

    store.create_upload = real_create_upload  # type: ignore[method-assign]
    services.repositories.create("race/app", RepositorySettings())
    upload_id = services.uploads.start("race/app")
    content = b"a layer"
    real_sync_upload = store.sync_upload

    def removed_before_sync(upload: str) -> None:  # what a forced delete does meanwhile
        os.unlink(paths.upload_path(store.root, upload))
        real_sync_upload(upload)

    store.sync_upload = removed_before_sync  # type: ignore[method-assign]
    with pytest.raises(errors.UploadNotFound):
        services.uploads.complete("race/app", upload_id, "sha256:" + hashlib.sha256(content).hexdigest(),
                                  content)
    services.close()
