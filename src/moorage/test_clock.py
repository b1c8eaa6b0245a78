"""``POST /_moorage/clock``: freeze or restore the server's clock (``MOORAGE_TEST_CLOCK=1`` only).

Body ``{"now": <epoch seconds>}`` freezes every time-dependent behaviour (push times, previews,
lifecycle runs, token expiry) at that instant; ``{"now": null}`` returns to the wall clock.
Answers ``{"now": <the clock's time>, "frozen": true|false}``.
"""

from __future__ import annotations

import json
import math

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from moorage.clock import Clock


class TestClockEndpoint:
    """The ASGI endpoint; 404 unless the test clock is enabled."""

    __test__ = False  # not a pytest test class

    def __init__(self, clock: Clock, enabled: bool) -> None:
        self.clock = clock
        self.enabled = enabled

    async def __call__(self, request: Request) -> Response:
        if not self.enabled:
            return JSONResponse({"error": "the test clock is disabled (set MOORAGE_TEST_CLOCK=1)"}, 404)
        if request.method == "POST":
            try:
                body = json.loads(await request.body())
                now = body["now"]
                if now is not None and (isinstance(now, bool) or not isinstance(now, (int, float))
                                        or not math.isfinite(now) or now < 0):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return JSONResponse({"error": 'expected {"now": <epoch seconds> | null}'}, 400)
            self.clock.frozen_at = float(now) if now is not None else None
        return JSONResponse({"now": self.clock.now(), "frozen": self.clock.frozen_at is not None})
