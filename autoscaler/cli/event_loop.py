"""The event loop a serving process runs on: uvloop where it is installed, asyncio's otherwise.

Profiled at 64 TLS connections (issue 15), about 40% of the serving CPU went to asyncio's
pure-Python TLS transport (``sslproto``) and aiohttp's per-request work sat on top of it. uvloop
implements the transport, TLS included, in C over libuv, and leaves the application's code
untouched (the same ``asyncio`` API). It ships wheels for Linux and macOS, the platforms the
image and the tests run on; where it is missing the stock loop runs and nothing else changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

Choice = Literal["auto", "asyncio", "uvloop"]


def run(main: Coroutine[Any, Any, T], loop: Choice = "auto") -> T:
    """Run ``main`` to completion on the chosen loop (``auto``: uvloop if importable)."""
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what a running process reports about itself."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
