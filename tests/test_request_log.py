"""Malformed requests are logged quietly: one INFO line each, no traceback, rate-limited. A bug
in a handler still logs at ERROR with its traceback. Against the real aiohttp server."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from aiohttp import web

from external_metrics.service import _site

GARBAGE = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # TLS to a plain port
    b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # a request line over 8 KB
    b"GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
    b"BREW /pot HTCPCP/1.0\r\n\r\n",
]

GET = "GET /{path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def send(port: int, payload: bytes, half_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug in a handler")


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.mark.asyncio
async def test_malformed_requests_are_quiet_and_bugs_are_not(caplog):
    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/boom", boom)
    runner, port = await _site(app, "127.0.0.1", 0, None, "test")
    caplog.set_level(logging.DEBUG)
    try:
        for _ in range(15):
            for payload in GARBAGE:
                await asyncio.to_thread(send, port, payload)
        answer = await asyncio.to_thread(send, port, GET.format(path="ok").encode(), False)
        assert b" 200 " in answer.split(b"\r\n", 1)[0] and b'{"ok": true}' in answer
        quiet = [r for r in caplog.records if r.name == "aiohttp.server"]
        loud = [r for r in quiet if r.levelno >= logging.WARNING or (r.exc_info and r.levelno > 10)]
        assert loud == []  # (aiohttp itself logs a first bad method at DEBUG)
        lines = [r for r in quiet if r.getMessage().startswith("malformed request from")]
        assert 1 <= len(lines) <= 10, [r.getMessage() for r in quiet]
        assert all(len(r.getMessage()) < 300 for r in lines)

        caplog.clear()
        answer = await asyncio.to_thread(send, port, GET.format(path="boom").encode(), False)
        assert b" 500 " in answer.split(b"\r\n", 1)[0]
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors and errors[0].exc_info is not None  # a bug keeps its traceback
    finally:
        await runner.cleanup()
