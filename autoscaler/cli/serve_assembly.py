"""Building ``serve`` from a config: every client, the store, the loop and the listeners.

The composition root of ``serve``: the one place that knows the concrete parts (the ``requests``
Prometheus client, the Kubernetes pod watch and reviews, the aiohttp apps, the grpcio server);
everything below it takes them as arguments, so ``external_metrics`` only serves what the store
holds and never imports a client. Without a cluster (``--no-kubernetes``) the loop counts the pods
Prometheus scrapes as the ready replicas, shadow mode and Events are off, and the HTTPS API can only
run with ``--insecure-skip-auth`` (there is nobody to ask TokenReview), which is said up front
rather than discovered as 401s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client
from prometheus_client import CollectorRegistry

from autoscaler.cli import event_loop
from autoscaler.cli.api_workers import ApiWorkers, KubeAccess, WorkerSpec
from autoscaler.cli.authenticator import build_authenticator
from autoscaler.clients.kube import build_api_client
from autoscaler.clients.kube.leases import LeaseClient
from autoscaler.clients.kube.pods import PodWatcher, WatchedWorkload
from autoscaler.clients.kube.workloads import CurrentAutoscalerReader, EventRecorder
from autoscaler.clients.prometheus import PrometheusClient
from autoscaler.config import GlobalConfig, ServiceConfig
from autoscaler.core.wire_names import PUBLISHED_METRICS
from autoscaler.engines.registry import ENGINES, GPU_MEMORY
from autoscaler.errors import InputError
from autoscaler.live.ksm_replicas import KubeStateMetricsReplicas
from autoscaler.live.loop import ControlLoop, EventSink, ReplicaSource, ShadowSource, workload_info
from autoscaler.live.loop_metrics import LoopMetrics
from autoscaler.live.store import RecommendationStore
from cache.leader import LeaderElector
from cache.prefetcher import DEFAULT_LEASE_NAME, Prefetcher
from external_metrics.app import create_api_app
from external_metrics.auth import AuthConfig, Authenticator
from external_metrics.health import create_health_app
from external_metrics.keda.server import create_grpc_server
from external_metrics.self_signed import self_signed_pair
from external_metrics.service import Listeners, run_service
from external_metrics.tls import (
    CertificateFiles,
    check_certificate_pair,
    read_ca_bundle,
    server_ssl_context,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """The command-line side of ``serve`` (the config file holds the rest)."""

    host: str = "0.0.0.0"
    kube_api: str | None = None
    kubeconfig: str | None = None
    use_kubernetes: bool = True
    skip_auth: bool = False
    backfill_s: float = 3600.0
    shadow: bool = False
    duration_s: float | None = None
    prefetch_dry_run: bool = False


def _tls_files(config: ServiceConfig, tmp: Path) -> tuple[str, str]:
    service = config.service
    if service.tls_cert_file and service.tls_key_file:
        check_certificate_pair(service.tls_cert_file, service.tls_key_file)
        return service.tls_cert_file, service.tls_key_file
    cert, key = self_signed_pair()
    (tmp / "tls.crt").write_bytes(cert)
    (tmp / "tls.key").write_bytes(key)
    log.warning("no tls_cert_file in the config: serving HTTPS with a self-signed certificate")
    return str(tmp / "tls.crt"), str(tmp / "tls.key")


TENANT_HEADER = "X-Scope-OrgID"
"""The header Mimir and Cortex read the tenant from."""


def prometheus_client(service: GlobalConfig) -> PrometheusClient:
    """The Prometheus client the settings describe (URL, timeout, Thanos' partial response,
    Mimir's tenant)."""
    tenant = service.prometheus_tenant
    return PrometheusClient(
        service.prometheus_url,
        timeout_s=service.prometheus_timeout_s,
        partial_response=service.prometheus_partial_response,
        headers={TENANT_HEADER: tenant} if tenant is not None else None,
    )


def serve(config: ServiceConfig, options: ServeOptions) -> int:
    """Build everything and serve until SIGTERM/SIGINT or ``duration_s``; returns the exit code."""
    if options.shadow:
        config = config.model_copy(
            update={"service": config.service.model_copy(update={"shadow": True})}
        )
    if not options.use_kubernetes and not options.skip_auth:
        raise InputError(
            "--no-kubernetes needs --insecure-skip-auth: without a cluster nobody can "
            "authenticate the API's clients (TokenReview)"
        )
    registry = CollectorRegistry(auto_describe=True)
    store = RecommendationStore(
        [workload_info(config, w, ENGINES.get(w.engine)) for w in config.targets],
        staleness_s=config.service.effective_staleness_s,
        clock=time.time,
        metric_names=PUBLISHED_METRICS,
    )
    replicas: ReplicaSource | None = None
    shadow: ShadowSource | None = None
    events: EventSink | None = None
    kube: client.ApiClient | None = None
    watcher: PodWatcher | None = None
    prefetcher: Prefetcher | None = None
    elector: LeaderElector | None = None
    if options.use_kubernetes:
        kube = build_api_client(host=options.kube_api, kubeconfig=options.kubeconfig)
        if config.service.replica_source == "kubernetes":
            watcher = PodWatcher(
                kube,
                [
                    WatchedWorkload(f"{w.namespace}/{w.name}", w.namespace, w.selector, w.kind)
                    for w in config.targets
                ],
            )
            replicas = watcher
        shadow = CurrentAutoscalerReader(kube)
        kinds = {f"{w.namespace}/{w.name}": w.kind for w in config.targets}
        # One Lease decides which replica acts on the cluster: prefetch Jobs and the loop's
        # Events (every replica sees the same pods; only one should say so). The namespace
        # and the pod name come from the downward API in deploy/.
        identity = os.environ.get("POD_NAME") or socket.gethostname()
        elector = LeaderElector(
            LeaseClient(kube),
            namespace=os.environ.get("POD_NAMESPACE", "default"),
            name=DEFAULT_LEASE_NAME,
            identity=identity,
            registry=registry,
        )
        events = EventRecorder(kube, kinds=kinds, instance=identity, leader=elector.is_leader)
        if any(w.prefetch.enabled for w in config.targets):
            prefetcher = Prefetcher(
                kube,
                registry,
                dry_run=options.prefetch_dry_run,
                identity=identity,
                elector=elector,
                workload_kinds=kinds,
            )

    with (
        prometheus_client(config.service) as prometheus,
        tempfile.TemporaryDirectory() as tmp,
    ):
        if config.service.replica_source == "kube-state-metrics":
            lws = [f"{w.namespace}/{w.name}" for w in config.targets if w.kind == "LeaderWorkerSet"]
            if lws:
                raise InputError(
                    f"replica_source kube-state-metrics cannot count LeaderWorkerSet groups "
                    f"({', '.join(lws)}): use replica_source kubernetes (the pod watch)"
                )
            ksm = KubeStateMetricsReplicas(
                prometheus,
                config.targets,
                budget_s=0.5 * config.service.effective_tick_budget_s,  # the rest: collect's
            )
            replicas = ksm
            log.info(
                "replica states from kube-state-metrics in Prometheus (%d more queries per tick)",
                len(ksm.queries),
            )
        loop = ControlLoop(
            config,
            prometheus=prometheus,
            store=store,
            engines=ENGINES,
            gpu_memory=GPU_MEMORY,
            metrics=LoopMetrics(registry),
            replicas=replicas,
            shadow=shadow,
            events=events,
            prefetcher=prefetcher,
        )
        log.info(
            "%d workload(s), %d PromQL queries per tick, tick %gs, Prometheus %s",
            len(config.workloads),
            loop.queries_per_tick(),
            config.service.tick_s,
            config.service.prometheus_url,
        )
        cert_file, key_file = _tls_files(config, Path(tmp))
        listeners = _listeners(config, options, store, registry, loop, cert_file, key_file, kube)
        if watcher is not None:
            watcher.start()
        if elector is not None:
            elector.start()
        if prefetcher is not None:
            prefetcher.start()
        try:
            event_loop.run(_main(loop, listeners, config, options))
        finally:
            if prefetcher is not None:
                prefetcher.stop()
            if elector is not None:
                elector.stop()  # releases the Lease so another replica takes over at once
            if watcher is not None:
                watcher.stop()
    return 0


def _listeners(
    config: ServiceConfig,
    options: ServeOptions,
    store: RecommendationStore,
    registry: CollectorRegistry,
    loop: ControlLoop,
    cert_file: str,
    key_file: str,
    kube: client.ApiClient | None,
) -> Listeners:
    health = create_health_app(registry, alive=loop.alive, ready=loop.ready, degraded=loop.degraded)
    if options.skip_auth:
        log.warning("the HTTPS API runs WITHOUT authentication (--insecure-skip-auth)")
    keda_ca = config.service.keda_client_ca_file
    if keda_ca:
        log.info("KEDA gRPC port: client certificates signed by %s are required", keda_ca)
    else:
        log.warning(
            "KEDA gRPC port: no keda_client_ca_file, any client that reaches port %d reads "
            "every workload's values (see docs/keda.md, mutual TLS)",
            config.service.ports.grpc,
        )
    grpc_server = create_grpc_server(
        store,
        f"{options.host}:{config.service.ports.grpc}",
        tls=(Path(cert_file).read_bytes(), Path(key_file).read_bytes()),
        client_ca=read_ca_bundle(keda_ca, "keda_client_ca_file") if keda_ca else None,
        tls_files=CertificateFiles(cert_file, key_file),
        max_workers=config.service.grpc_workers,
    )
    if config.service.api_processes > 1:
        spec = WorkerSpec(
            workloads=tuple(entry.info for entry in store.entries()),
            staleness_s=store.staleness_s,
            metric_names=store.metric_names,
            cert_file=cert_file,
            key_file=key_file,
            kube=None
            if options.skip_auth
            else KubeAccess(host=options.kube_api, kubeconfig=options.kubeconfig),
            log_level=logging.getLogger().getEffectiveLevel(),
        )
        workers = ApiWorkers(store, spec, config.service.api_processes)
        return Listeners(health=health, grpc=grpc_server, api_servers=workers)
    # In-process API only: the API processes build their own authenticator and TLS context.
    auth: Authenticator | None = None
    if not options.skip_auth:
        assert kube is not None  # serve() refuses --no-kubernetes without --insecure-skip-auth
        auth = build_authenticator(kube, AuthConfig())
    ssl_context: ssl.SSLContext = server_ssl_context(
        cert_file, key_file, client_ca_pem=auth.client_ca_pem if auth is not None else None
    )
    https_files = CertificateFiles(cert_file, key_file)
    return Listeners(
        health=health,
        api=create_api_app(store, auth),
        ssl_context=ssl_context,
        grpc=grpc_server,
        tls_reload=lambda: https_files.reload_into(ssl_context),
    )


async def _main(
    loop: ControlLoop, listeners: Listeners, config: ServiceConfig, options: ServeOptions
) -> None:
    stop = asyncio.Event()
    aio = asyncio.get_running_loop()
    print(f"llm-autoscaler: event loop {event_loop.loop_name(aio)}", file=sys.stderr, flush=True)
    for sig in (signal.SIGTERM, signal.SIGINT):
        aio.add_signal_handler(sig, stop.set)
    timer = None
    if options.duration_s is not None:
        timer = aio.call_later(options.duration_s, stop.set)
    try:
        await run_service(
            loop,
            listeners,
            host=options.host,
            ports=config.service.ports,
            stop=stop,
            backfill_s=options.backfill_s,
        )
    finally:
        if timer is not None:
            timer.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                aio.remove_signal_handler(sig)
        print("llm-autoscaler: stopped", file=sys.stderr, flush=True)


__all__ = ["PUBLISHED_METRICS", "ServeOptions", "serve"]
