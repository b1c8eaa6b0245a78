"""Storage-level behaviour that the HTTP tests cannot pin down directly."""

from __future__ import annotations

import threading
import time

from moorage.storage.metadata.database import Database


def test_sqlite_writers_take_turns_across_database_objects(tmp_path):
    """Two Database objects on one SQLite file (as two worker processes would have): a writer
    waits for the other's turn to end instead of failing or polling."""
    url = f"sqlite:///{tmp_path / 'moorage.db'}"
    first, second = Database(url), Database(url)
    with first.write_connection() as connection:
        connection.exec_driver_sql("CREATE TABLE facts (value INTEGER)")
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
