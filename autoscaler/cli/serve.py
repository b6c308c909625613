"""``llm-autoscaler serve``: run the control loop and serve its signals."""

from __future__ import annotations

import argparse
import sys

from autoscaler.cli.flags import Subparsers, positive
from autoscaler.errors import InputError


def add_parser(sub: Subparsers) -> None:
    srv = sub.add_parser(
        "serve",
        help="run the control loop and serve its signals (HPA, KEDA, JSON, /metrics)",
        description="Every tick: query Prometheus, forecast, recommend, store. Serves the External "
        "Metrics API and /v1 JSON on HTTPS (ports.https, default 6443), /metrics /healthz /readyz "
        "on HTTP (ports.metrics, 9090) and the KEDA external scaler on gRPC (ports.grpc, 9443). "
        "Stale or missing data is answered with 503 / UNAVAILABLE, never a scale-down. SIGTERM "
        "or Ctrl-C shuts down cleanly. See docs/serve.md.",
    )
    srv.add_argument("--config", required=True, metavar="FILE", help="YAML config (see docs)")
    srv.add_argument("--host", default="0.0.0.0", help="bind address of all ports (0.0.0.0)")
    kube = srv.add_mutually_exclusive_group()
    kube.add_argument(
        "--kube-api", metavar="URL", help="Kubernetes API server URL (default: in-cluster)"
    )
    kube.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig to reach the cluster")
    kube.add_argument(
        "--no-kubernetes",
        action="store_true",
        help="run without a cluster: replicas are the pods Prometheus scrapes, no shadow, no "
        "Events, no delegated auth (the API then needs --insecure-skip-auth)",
    )
    srv.add_argument(
        "--insecure-skip-auth",
        action="store_true",
        help="serve the HTTPS API without authentication/authorization (local trials only)",
    )
    srv.add_argument(
        "--backfill",
        default="1h",
        metavar="DURATION",
        help="Prometheus history replayed at start-up (PromQL duration, default 1h; 0s: none)",
    )
    srv.add_argument(
        "--shadow",
        action="store_true",
        help="shadow mode for every workload (overrides the config): compute and publish on "
        "/v1 next to the current HPA's decision; don't wire an HPA to it yet",
    )
    srv.add_argument(
        "--prefetch-dry-run",
        action="store_true",
        help="plan modelcar prefetches and log them, create no Job and set no label",
    )
    srv.add_argument(
        "--duration",
        type=positive("--duration"),
        default=None,
        metavar="S",
        help="exit after S seconds (default: until SIGTERM or Ctrl-C)",
    )
    srv.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    srv.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the service until SIGTERM (serve_assembly builds the parts)."""
    import logging

    from autoscaler.cli.serve_assembly import ServeOptions, serve
    from autoscaler.config import load_config, prom_duration_seconds

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = load_config(args.config)
    try:
        backfill_s = prom_duration_seconds(args.backfill)
    except ValueError as exc:
        raise InputError(f"--backfill: {exc}") from None
    options = ServeOptions(
        host=args.host,
        kube_api=args.kube_api,
        kubeconfig=args.kubeconfig,
        use_kubernetes=not args.no_kubernetes,
        skip_auth=args.insecure_skip_auth,
        backfill_s=backfill_s,
        shadow=args.shadow,
        duration_s=args.duration,
        prefetch_dry_run=args.prefetch_dry_run,
    )
    try:
        return serve(config, options)
    except OSError as exc:  # a port in use, a host that does not resolve, a TLS file ssl refuses
        raise InputError(f"serve cannot start: {exc}") from exc
