"""The server's clock: epoch seconds (float, UTC). One object, so tests can freeze time."""

from __future__ import annotations

import time


class Clock:
    """Wall-clock time, or a frozen instant when ``frozen_at`` is set (test clock)."""

    def __init__(self) -> None:
        self.frozen_at: float | None = None

    def now(self) -> float:
        """Current time in epoch seconds."""
        return self.frozen_at if self.frozen_at is not None else time.time()
