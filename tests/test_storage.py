"""Storage-level behaviour that the HTTP tests cannot pin down directly."""

from __future__ import annotations

import fcntl
import sqlite3
import os
import threading
import time

import pytest
from sqlalchemy.exc import IntegrityError

from moorage.storage.metadata import statements
from moorage.storage.metadata.database import Database


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
    assert reader.all("SELECT id FROM parents ORDER BY id", {}) == [(1,)]
    assert reader.all("SELECT id FROM children", {}) == []
    database.dispose()
