"""Blocking work (database writes, file I/O, hashing) off the event loop, on one thread pool.

``run_in_thread(function, *args)`` runs ``function`` in a worker thread and awaits its result,
with the caller's context variables (structlog's bound values). It is asyncio's executor hand-off
directly: about 25 µs less per call than going through anyio's ``to_thread`` (as Starlette's
``run_in_threadpool`` does), which a push pays several times per blob. The pool allows as many
threads as anyio's default limiter (40): uploads may wait up to a second for a busy session's
lock and SQLite writers wait for their turn, so threads must not run out under load.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from moorage.storage.metadata.database import WriterBusy

MAX_THREADS = 40

_T = TypeVar("_T")
_pool = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="moorage-worker")


async def run_in_thread(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``function(*args, **kwargs)`` in a worker thread; its result, or its exception raised."""
    return await asyncio.wrap_future(start_in_thread(function, *args, **kwargs))


def start_in_thread(function: Callable[..., _T], *args: Any, **kwargs: Any) -> Future[_T]:
    """Start ``function(*args, **kwargs)`` in a worker thread now, with the caller's context
    variables, and return its future: await it with ``asyncio.wrap_future``, or wait for it with
    ``result()`` where awaiting is not possible (cleanup after a cancelled request)."""
    context = contextvars.copy_context()
    return _pool.submit(functools.partial(context.run, function, *args, **kwargs))


async def run_write(function: Callable[..., _T], *args: Any, inline: dict[str, Any] | None,
                    **kwargs: Any) -> _T:
    """A write ``function(*args, **kwargs)``: with ``inline``, first on the event loop with
    ``**inline`` added, the arguments that make it raise ``WriterBusy`` (having written nothing)
    instead of waiting for the SQLite writers' turn; in a worker thread, waiting for the turn,
    without ``inline`` or when it raised. A short write on the event loop costs less than the
    hop to a worker thread and back; a wait there would stall every connection of the process.
    """
    if inline is not None:
        try:
            return function(*args, **inline, **kwargs)
        except WriterBusy:
            pass
    return await run_in_thread(function, *args, **kwargs)
