"""``llm-autoscaler validate-config``: check a service configuration file and summarise it."""

from __future__ import annotations

import argparse
from pathlib import Path

from autoscaler.cli.flags import Subparsers
from autoscaler.errors import InputError


def add_parser(sub: Subparsers) -> None:
    vc = sub.add_parser(
        "validate-config",
        help="check a service configuration file and summarise it",
        description="Validate a service configuration (YAML): every problem is reported with "
        "the file and the field path; exit code 2 when the file is invalid.",
    )
    vc.add_argument("file", type=Path, help="configuration file (YAML)")
    vc.add_argument(
        "--skip-files",
        action="store_true",
        help="check only the YAML, not the files it names (TLS certificate and key); for a "
        "config whose files are mounted only in the pod",
    )
    vc.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from autoscaler.config import describe, load_config

    config = load_config(args.file)
    service = config.service
    if not args.skip_files:
        from external_metrics.tls import check_service_files

        try:
            check_service_files(
                service.tls_cert_file, service.tls_key_file, service.keda_client_ca_file
            )
        except InputError as exc:
            raise InputError(
                f"{args.file}: {exc} (--skip-files checks only the YAML, e.g. where the "
                "files are mounted only in the pod)"
            ) from None
    print(describe(config))
    return 0
