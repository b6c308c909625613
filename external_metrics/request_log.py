"""What the HTTP servers log about requests they could not even parse: one quiet line, rarely.

Any client can send bytes that are not HTTP (a port scan, TLS to a plain port, a 100 KB request
line). aiohttp logs each such request at ERROR with a full traceback, so one noisy client filled
a live test's log with 53 tracebacks. :class:`RequestErrorLog` is the logger handed to aiohttp's
request handler (its documented ``logger`` argument): a request that failed to *parse*
(``aiohttp.http_exceptions.HttpProcessingError``: bad method, bad header, a line too long) is
logged at INFO as one line without a traceback, at most ``per_minute`` times a minute, with a
count of what was left out. Anything else — an exception from our own handlers, i.e. a bug —
still goes to ERROR with its traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from autoscaler.errors import quoted

__all__ = ["RequestErrorLog"]


class RequestErrorLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, quiet and rate-limited for malformed requests."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        per_minute: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(logger, {})
        self.per_minute = per_minute
        self._clock = clock
        self._window_start = -float("inf")
        self._logged = 0
        self.suppressed = 0
        """Malformed requests not logged since the last summary line."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if not isinstance(exc, HttpProcessingError):
            self.logger.exception(msg, *args, exc_info=exc_info, **kw)
            return
        now = self._clock()
        if now - self._window_start >= 60.0:
            if self.suppressed:
                self.logger.info("%d more malformed requests in the last minute", self.suppressed)
            self._window_start, self._logged, self.suppressed = now, 0, 0
        if self._logged >= self.per_minute:
            self.suppressed += 1
            return
        self._logged += 1
        remote = args[0] if args else "?"
        what = quoted(str(exc.message or type(exc).__name__), limit=120)
        self.logger.info("malformed request from %s (HTTP %s): %s", remote, exc.code, what)
