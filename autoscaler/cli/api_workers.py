"""The HTTPS API served by processes of its own (``service.api_processes`` > 1).

Why: one Python process answers the External Metrics API and ``/v1`` at about 0.2 ms of CPU per
request (aiohttp and TLS, measured in ``benchmarks/api_load.py``), which at 64 concurrent
connections puts the p99 right at its 20 ms goal on two cores; and the control loop's tick runs in
that same interpreter, so a long tick (thousands of workloads) holds the GIL away from the
requests. With N API processes the kernel spreads connections over N listening sockets on one
port (``SO_REUSEPORT``). Each answers from its own copy of the store, which this (the loop's)
process sends after every write: the whole published entry map over a pipe, in msgpack chunks of
:data:`CHUNK` entries, only the newest (a copy that falls behind skips versions, it never queues
them). Chunks, because decoding is one C call that holds the GIL: 10,000 entries in one piece
stalled an API process's requests for about half a second, a chunk for a few milliseconds.
The loop, the gRPC port (KEDA) and the probes stay here. A copy is as fresh as the loop's store
within the poll interval (0.2 s), far below the staleness bound every answer is checked against.

An API process that dies is started again (and gets the current store at once); a process that
cannot bind or build its authenticator stops ``serve`` at start-up with one line, as the
in-process listener does. The processes are started with ``spawn``: nothing of this process's
threads (pod watch, Prometheus session) or locks is inherited.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Final

import msgspec
from aiohttp import web

from autoscaler.cli import event_loop
from autoscaler.errors import InputError
from autoscaler.live.loop import gc_paused
from autoscaler.live.store import Entry, RecommendationStore, WorkloadInfo
from external_metrics.app import create_api_app
from external_metrics.auth import AuthConfig, Authenticator
from external_metrics.request_log import RequestErrorLog
from external_metrics.service import reload_tls_periodically
from external_metrics.tls import CertificateFiles, server_ssl_context

log = logging.getLogger(__name__)

POLL_S: Final = 0.2
"""How often the loop's store version is compared with what the API processes hold."""
START_TIMEOUT_S: Final = 60.0
"""An API process that has not bound its port by then is a start-up failure."""
STOP_GRACE_S: Final = 5.0
CHUNK: Final = 256
"""Entries per message of a store copy."""

Chunk = tuple[int, int, int, dict[str, Entry]]
"""``(version, index, count, entries)``: one message of a store copy."""


def encode_copy(version: int, entries: dict[str, Entry], chunk: int = CHUNK) -> list[bytes]:
    """The messages that carry ``entries`` of ``version`` (at least one, even when empty)."""
    encoder = msgspec.msgpack.Encoder()
    keys = list(entries)
    count = max(1, -(-len(keys) // chunk))
    return [
        encoder.encode(
            (version, i, count, {k: entries[k] for k in keys[i * chunk : (i + 1) * chunk]})
        )
        for i in range(count)
    ]


class CopyAssembler:
    """Puts a store copy back together from its chunks; a chunk of a newer version drops an
    unfinished older one (the sender only ever sends the newest)."""

    def __init__(self) -> None:
        self._decoder = msgspec.msgpack.Decoder(Chunk)
        self._version = -1
        self._parts: dict[str, Entry] = {}
        self._seen = 0

    def add(self, message: bytes) -> tuple[int, dict[str, Entry]] | None:
        """The whole copy once its last chunk is in, else None."""
        version, _, count, entries = self._decoder.decode(message)
        if version != self._version:
            self._version, self._parts, self._seen = version, {}, 0
        self._parts.update(entries)
        self._seen += 1
        if self._seen < count:
            return None
        whole, self._parts, self._seen = self._parts, {}, 0
        return version, whole


@dataclass(frozen=True, slots=True)
class KubeAccess:
    """How an API process reaches the API server for its own TokenReviews and
    SubjectAccessReviews (the same flags as ``serve``'s)."""

    host: str | None = None
    kubeconfig: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything an API process needs (pickled to it at start): no live object crosses."""

    workloads: tuple[WorkloadInfo, ...]
    staleness_s: float
    metric_names: tuple[str, ...]
    cert_file: str
    key_file: str
    kube: KubeAccess | None
    """None: no authentication (``--insecure-skip-auth``)."""
    log_level: int = logging.INFO


@dataclass(slots=True)
class _Worker:
    index: int
    process: BaseProcess
    conn: Connection
    sent_version: int = -1


@dataclass(slots=True)
class ApiWorkers:
    """Starts, feeds, restarts and stops the API processes (``external_metrics.service``'s
    ``ApiServers``)."""

    store: RecommendationStore
    spec: WorkerSpec
    processes: int
    _workers: list[_Worker] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _reserved: socket.socket | None = None
    _address: tuple[str, int] = ("", 0)
    _stopping: bool = False

    async def start(self, host: str, port: int) -> int:
        """Start every process on ``host:port`` (0: one free port for all); the bound port."""
        self._reserved, port = _reserve_port(host, port)
        self._address = (host, port)
        try:
            for index in range(self.processes):
                self._workers.append(await self._spawn(index))
        except BaseException:
            await self.stop()
            raise
        self._tasks = [asyncio.create_task(self._publish()), asyncio.create_task(self._watch())]
        log.info(
            "External Metrics API and /v1 on https://%s:%d (%d API processes)",
            host,
            port,
            self.processes,
        )
        return port

    async def stop(self) -> None:
        """Stop feeding and watching, then every process (SIGTERM, a grace, then SIGKILL)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for worker in self._workers:
            await asyncio.to_thread(_end, worker)
        self._workers = []
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None

    async def _spawn(self, index: int) -> _Worker:
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        host, port = self._address
        process = ctx.Process(
            target=worker_main,
            args=(self.spec, host, port, theirs, index),
            name=f"llm-autoscaler-api-{index}",
            daemon=True,
        )
        process.start()
        theirs.close()
        worker = _Worker(index, process, ours)
        answer = await asyncio.to_thread(_first_message, ours, START_TIMEOUT_S)
        if answer is None or answer[0] != "ready":
            await asyncio.to_thread(_end, worker)
            why = "did not start in time" if answer is None else str(answer[1])
            raise InputError(f"API process {index}: {why}")
        version, entries = self.store.published()
        await self._send(worker, version, await asyncio.to_thread(encode_copy, version, entries))
        return worker

    async def _publish(self) -> None:
        """Send the store to every process whose copy is older, newest version only."""
        while True:
            version, entries = self.store.published()
            stale = [w for w in self._workers if w.sent_version != version]
            if stale:
                messages = await asyncio.to_thread(encode_copy, version, entries)
                for worker in stale:
                    await self._send(worker, version, messages)
            await asyncio.sleep(POLL_S)

    async def _send(self, worker: _Worker, version: int, messages: list[bytes]) -> None:
        """Send one encoded store copy; a process that is gone is left to :meth:`_watch`."""
        try:
            await asyncio.to_thread(_send_all, worker.conn, messages)
        except (BrokenPipeError, ConnectionResetError, OSError):
            return  # the process is gone: _watch starts another
        worker.sent_version = version

    async def _watch(self) -> None:
        """Start a process again when one exits (it gets the current store at once)."""
        while True:
            await asyncio.sleep(1.0)
            for i, worker in enumerate(self._workers):
                if worker.process.is_alive() or self._stopping:
                    continue
                log.warning(
                    "API process %d exited (code %s): starting another",
                    worker.index,
                    worker.process.exitcode,
                )
                await asyncio.to_thread(_end, worker)
                try:
                    self._workers[i] = await self._spawn(worker.index)
                except InputError as exc:
                    log.error("%s; trying again in a second", exc)


def _reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound, never listening ``SO_REUSEPORT`` socket: it fixes one port for every API process
    (with port 0, the one the kernel picks) and receives no connection itself."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise InputError(
            f"cannot listen on {host}:{port} for the External Metrics API: {exc}"
        ) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise InputError(
            f"cannot listen on {host}:{port} for the External Metrics API: {exc.strerror}"
        ) from exc
    return sock, int(sock.getsockname()[1])


def _send_all(conn: Connection, messages: list[bytes]) -> None:
    for message in messages:
        conn.send_bytes(message)


def _first_message(conn: Connection, timeout_s: float) -> tuple[str, object] | None:
    try:
        if not conn.poll(timeout_s):
            return None
        message = conn.recv()
    except (EOFError, OSError):
        return ("error", "exited while starting (its log says why)")
    return message if isinstance(message, tuple) else None


def _end(worker: _Worker) -> None:
    process = worker.process
    if process.is_alive():
        process.terminate()
        process.join(STOP_GRACE_S)
    if process.is_alive():
        process.kill()
        process.join(STOP_GRACE_S)
    worker.conn.close()


# --- the API process ----------------------------------------------------------------------------


def worker_main(spec: WorkerSpec, host: str, port: int, conn: Connection, index: int) -> None:
    """An API process: serve the store copies the loop's process sends until SIGTERM or until
    that process is gone (the pipe closes)."""
    logging.basicConfig(
        level=spec.log_level,
        format=f"%(asctime)s %(levelname)s api-{index} %(name)s: %(message)s",
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the parent stops us
    try:
        event_loop.run(_serve_copy(spec, host, port, conn))
    except InputError as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", str(exc)))
    except OSError as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"cannot serve on {host}:{port}: {exc}"))
    except Exception as exc:  # e.g. the API server refused the authenticator's first read
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def _serve_copy(spec: WorkerSpec, host: str, port: int, conn: Connection) -> None:
    store = RecommendationStore(
        list(spec.workloads),
        staleness_s=spec.staleness_s,
        clock=time.time,
        metric_names=spec.metric_names,
    )
    auth = await asyncio.to_thread(_authenticator, spec.kube)
    ctx = server_ssl_context(
        spec.cert_file, spec.key_file, client_ca_pem=auth.client_ca_pem if auth else None
    )
    runner = web.AppRunner(
        create_api_app(store, auth),
        access_log=None,
        shutdown_timeout=2.0,
        logger=RequestErrorLog(logging.getLogger("aiohttp.server")),
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ctx, reuse_port=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    conn.send(("ready", port))
    files = CertificateFiles(spec.cert_file, spec.key_file)
    threading.Thread(
        target=_follow,
        args=(conn, FrozenLoader(store), stop, asyncio.get_running_loop()),
        name="store-copies",
        daemon=True,
    ).start()
    reloader = asyncio.create_task(reload_tls_periodically(lambda: files.reload_into(ctx), stop))
    try:
        await stop.wait()
    finally:
        reloader.cancel()
        await runner.cleanup()


def _authenticator(kube: KubeAccess | None) -> Authenticator | None:
    if kube is None:
        return None
    from autoscaler.cli.authenticator import build_authenticator
    from autoscaler.clients.kube import build_api_client

    return build_authenticator(
        build_api_client(host=kube.host, kubeconfig=kube.kubeconfig), AuthConfig()
    )


def _follow(
    conn: Connection,
    load: Callable[[int, dict[str, Entry]], None],
    stop: asyncio.Event,
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Load every store copy that arrives (a daemon thread: a blocked read never holds up the
    process's exit); the pipe closing means the loop's process is gone."""
    assembler = CopyAssembler()
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            if not stop.is_set():
                log.warning("the control loop's process is gone: stopping")
            loop.call_soon_threadsafe(stop.set)
            return
        # The copy's objects are acyclic: the cyclic collector has nothing to find in them, but
        # a full collection while 10,000 entries are being decoded took up to 0.2 s (measured),
        # all of it holding the GIL away from the requests. So: no collection while decoding,
        # and once loaded the copy is frozen out of the later ones (refcounts still free it;
        # see FrozenLoader for what the freeze could keep).
        with gc_paused():
            whole = assembler.add(message)
        if whole is not None:
            loop.call_soon_threadsafe(load, *whole)


FULL_COLLECTION_EVERY: Final = 40
"""Store copies between two full collections in an API process (10 minutes of 15 s ticks)."""


class FrozenLoader:
    """Loads each store copy, then moves every object into the collector's permanent generation.

    A frozen object that later becomes part of a garbage cycle (a request in flight at the
    freeze) is not collected while frozen, so every :data:`FULL_COLLECTION_EVERY` copies the
    freeze is undone and one full collection runs: one pause per ten minutes instead of one
    per tick.
    """

    def __init__(self, store: RecommendationStore) -> None:
        self.store = store
        self.loads = 0

    def __call__(self, version: int, entries: dict[str, Entry]) -> None:
        self.store.load(version, entries)
        self.loads += 1
        if self.loads % FULL_COLLECTION_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()


__all__ = ["ApiWorkers", "CopyAssembler", "KubeAccess", "WorkerSpec", "encode_copy", "worker_main"]
