"""Running ``serve``: the control loop and the three listeners, started and stopped together.

The pieces are built by the caller (the CLI) and handed in, so this module only owns their
lifetime: bind the health port first (kubelet probes it while the backfill runs), backfill, then
the TLS API port and the gRPC port, then tick until ``stop`` is set (SIGTERM or SIGINT), and on the
way out stop accepting, let in-flight requests finish (a short grace) and close everything. A port
that cannot be bound is a clear error before any tick runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from aiohttp import web

from autoscaler.config import PortsConfig
from autoscaler.errors import InputError
from autoscaler.live.loop import ControlLoop
from external_metrics.request_log import RequestErrorLog

log = logging.getLogger(__name__)
_AIOHTTP_SERVER_LOG: Final = logging.getLogger("aiohttp.server")


class GrpcServer(Protocol):
    """The part of ``grpc.Server`` this module uses (started and stopped here)."""

    def start(self) -> None: ...

    def stop(self, grace: float | None) -> object: ...


class ApiServers(Protocol):
    """The HTTPS API served by other processes (``service.api_processes`` > 1): started once
    the backfill is done, stopped on the way out; ``start`` returns the bound port."""

    async def start(self, host: str, port: int) -> int: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Listeners:
    """What ``serve`` exposes; ``api``/``grpc`` may be None (e.g. a metrics-only run)."""

    health: web.Application
    api: web.Application | None = None
    ssl_context: ssl.SSLContext | None = None
    grpc: GrpcServer | None = None
    api_servers: ApiServers | None = None
    """Instead of ``api``: API processes fed with copies of the store."""
    tls_reload: Callable[[], object] | None = None
    """Called every ``TLS_RELOAD_S`` while serving: loads a renewed certificate into
    ``ssl_context`` (``CertificateFiles.reload_into``)."""


TLS_RELOAD_S: Final = 30.0
"""How often the serving certificate files are checked for a renewal (a stat, no read)."""


@dataclass(frozen=True, slots=True)
class BoundPorts:
    """Ports actually bound (0 in the config picks a free one: tests use that)."""

    health: int
    api: int | None


async def _site(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None, what: str
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=2.0, logger=RequestErrorLog(_AIOHTTP_SERVER_LOG)
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise InputError(f"cannot listen on {host}:{port} for {what}: {exc.strerror}") from exc
    sockets = [s for s in (runner.addresses or [])]
    bound = sockets[0][1] if sockets else port
    return runner, int(bound)


async def run_service(
    loop: ControlLoop,
    listeners: Listeners,
    *,
    host: str,
    ports: PortsConfig,
    stop: asyncio.Event,
    backfill_s: float,
    on_bound: asyncio.Future[BoundPorts] | None = None,
) -> None:
    """Serve until ``stop`` is set. Raises :class:`InputError` when a port cannot be bound."""
    runners: list[web.AppRunner] = []
    grpc_started = False
    api_servers_started = False
    try:
        health_runner, health_port = await _site(
            listeners.health, host, ports.metrics, None, "/metrics and probes"
        )
        runners.append(health_runner)
        log.info(
            "metrics and probes on http://%s:%d (/metrics, /healthz, /readyz)", host, health_port
        )
        if backfill_s > 0:
            try:
                await asyncio.to_thread(loop.backfill, backfill_s)
            except Exception as exc:  # a failed backfill must not keep the service down
                log.warning("backfill failed, starting cold: %s", exc)
                loop.health.backfilled = True
        else:
            loop.health.backfilled = True
        api_port = None
        if listeners.api is not None:
            api_runner, api_port = await _site(
                listeners.api, host, ports.https, listeners.ssl_context, "the External Metrics API"
            )
            runners.append(api_runner)
            log.info("External Metrics API and /v1 on https://%s:%d", host, api_port)
        if listeners.api_servers is not None:
            api_servers_started = True
            api_port = await listeners.api_servers.start(host, ports.https)
        if listeners.grpc is not None:
            listeners.grpc.start()
            grpc_started = True
            log.info("KEDA external scaler (gRPC) on %s:%d", host, ports.grpc)
        if on_bound is not None and not on_bound.done():
            on_bound.set_result(BoundPorts(health=health_port, api=api_port))
        reloader = (
            asyncio.create_task(reload_tls_periodically(listeners.tls_reload, stop))
            if listeners.tls_reload is not None
            else None
        )
        try:
            await loop.run(stop)
        finally:
            if reloader is not None:
                reloader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reloader
    finally:
        log.info("shutting down")
        if grpc_started and listeners.grpc is not None:
            listeners.grpc.stop(2.0)
        if api_servers_started and listeners.api_servers is not None:
            await listeners.api_servers.stop()
        for runner in reversed(runners):
            await runner.cleanup()


async def reload_tls_periodically(reload: Callable[[], object], stop: asyncio.Event) -> None:
    """Check the certificate files every ``TLS_RELOAD_S`` until ``stop``; never raises."""
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), TLS_RELOAD_S)
        if stop.is_set():
            return
        try:
            reload()
        except Exception as exc:  # a bad renewal must not stop the service
            log.warning("TLS reload failed, keeping the current certificate: %s", exc)
