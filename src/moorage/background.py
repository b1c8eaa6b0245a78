"""Periodic tasks inside the server (lifecycle runs, garbage collection), one replica at a time.

Each task runs in its own daemon thread every ``interval_seconds``; before running, it takes a
named lease in the metadata store, so with several replicas on one database only the holder
runs it. The lease lasts a little longer than the interval and is renewed by the holder.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import select

from moorage.storage.metadata.database import Database, insert_ignoring_duplicates
from moorage.storage.metadata.schema import Lease

log = structlog.get_logger("moorage.background")

HOLDER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire_lease(database: Database, name: str, holder: str, now: float, ttl_seconds: float) -> bool:
    """Take or renew lease ``name`` for ``holder`` until ``now + ttl_seconds``.

    Returns:
        True when ``holder`` holds the lease now; False when another holder's lease is current.
    """
    with database.transaction() as session:
        if insert_ignoring_duplicates(session, Lease, {"name": name, "holder": holder,
                                                       "expires_at": now + ttl_seconds}):
            return True
        query = select(Lease).where(Lease.name == name)
        if not database.is_sqlite:
            query = query.with_for_update()
        lease = session.scalars(query).one()
        if lease.holder != holder and lease.expires_at > now:
            return False
        lease.holder = holder
        lease.expires_at = now + ttl_seconds
        return True


@dataclass
class PeriodicTask:
    """``run()`` every ``interval_seconds`` (seconds), under lease ``name``."""

    name: str
    interval_seconds: float
    run: Callable[[], object]


class BackgroundRunner:
    """Runs periodic tasks in daemon threads until :meth:`stop`."""

    def __init__(self, database: Database, now: Callable[[], float]) -> None:
        self.database = database
        self.now = now
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, tasks: list[PeriodicTask]) -> None:
        """Start one thread per task with a positive interval."""
        for task in tasks:
            if task.interval_seconds <= 0:
                continue
            thread = threading.Thread(target=self._loop, args=(task,), name=f"moorage-{task.name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Ask every task to stop after its current run, and wait briefly for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _loop(self, task: PeriodicTask) -> None:
        while not self._stop.wait(task.interval_seconds):
            try:
                if acquire_lease(self.database, task.name, HOLDER, self.now(), task.interval_seconds * 1.5):
                    task.run()
            except Exception:  # a failed run is logged and retried next interval
                log.exception("background.task_failed", task=task.name)
