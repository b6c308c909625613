"""Reading the service configuration: a YAML file → a validated :class:`ServiceConfig`.

Every failure (missing file, malformed YAML, an empty file, a wrong field) becomes one
:class:`~autoscaler.errors.InputError` whose message names the file, the field path
(``workloads[1].slo.tpot_s``) and the problem; no pydantic traceback reaches a user. The schema
itself is :mod:`autoscaler.config.schema`; this module is what turns its errors into sentences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]
from pydantic import ValidationError

from autoscaler.config.schema import ENGINES_CONTEXT_KEY, KNOWN_ENGINES, ServiceConfig
from autoscaler.errors import InputError


def _field_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _format_error(error: Mapping[str, Any]) -> str:
    loc: list[int | str] = list(error["loc"])
    ctx = error.get("ctx") or {}
    message = str(error["msg"])
    if error["type"] == "config":
        loc.append(str(ctx["field"]))
        message = str(ctx["problem"])
    elif error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    elif error["type"] == "extra_forbidden":
        message = "unknown field (check the spelling; see docs/configuration.md)"
    elif error["type"] == "missing":
        message = "required field is missing"
    else:
        given = error.get("input")
        if not isinstance(given, dict | list):
            message += f" (got {given!r})"
    path = _field_path(loc) or "(top level)"
    return f"{path}: {message}"


def format_validation_error(source: str, exc: ValidationError) -> str:
    """One line per problem: ``<source>: <field path>: <problem>``."""
    lines = [f"{source}: {_format_error(e)}" for e in exc.errors(include_url=False)]
    return "\n".join(lines)


def parse_config(
    data: object, *, source: str = "<config>", engines: Sequence[str] = KNOWN_ENGINES
) -> ServiceConfig:
    """Validate already-parsed YAML/JSON ``data``; ``InputError`` names ``source`` and fields."""
    if not isinstance(data, Mapping):
        raise InputError(
            f"{source}: the config must be a mapping with 'service' and 'workloads', "
            f"not {type(data).__name__}"
        )
    try:
        return ServiceConfig.model_validate(data, context={ENGINES_CONTEXT_KEY: tuple(engines)})
    except ValidationError as e:
        raise InputError(format_validation_error(source, e)) from e


def load_config(path: str | Path, *, engines: Sequence[str] = KNOWN_ENGINES) -> ServiceConfig:
    """Read and validate the YAML config at ``path``.

    Raises :class:`InputError` naming the file and, for a wrong field, its path (one line per
    problem), for a YAML syntax error its line and column, and for an empty or unreadable file
    what is wrong with it.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise InputError(f"{source}: no such config file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{source}: cannot read the config: {e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = e.problem or e.context or "malformed YAML"
        raise InputError(f"{source}{where}: malformed YAML: {problem}") from e
    except yaml.YAMLError as e:
        raise InputError(f"{source}: malformed YAML: {e}") from e
    if data is None:
        raise InputError(f"{source}: the config file is empty")
    return parse_config(data, source=source, engines=engines)


def describe(config: ServiceConfig) -> str:
    """A short human summary of ``config`` (for ``validate-config``), warnings last."""
    s = config.service
    lines = [
        f"prometheus {s.prometheus_url}, tick {s.tick_s:g}s, rate window {s.rate_window}, "
        f"stale after {s.effective_staleness_s:g}s, pending timeout {s.pending_timeout_s:g}s",
        f"ports: https {s.ports.https}, metrics {s.ports.metrics}, grpc {s.ports.grpc}; "
        f"TLS {s.tls_cert_file or 'not configured'}; KEDA client certificates "
        + (f"required (CA {s.keda_client_ca_file})" if s.keda_client_ca_file else "not checked"),
        f"{len(config.workloads)} workload(s), {len(config.targets)} scale target(s):",
    ]
    for w in config.targets:
        p, slo = w.profile, w.slo
        extras = [] if w.role is None else [f"{w.role} of {w.group}, {w.kind}"]
        if config.shadow(w):
            extras.append("shadow")
        if w.prefetch.enabled:
            extras.append(f"prefetch (≤{w.prefetch.max_warm_nodes} warm nodes)")
        if w.capacity_seed is not None:
            extras.append(f"capacity seed {w.capacity_seed:g}")
        if w.gateway is not None:
            join = ", ".join(f"{k}={v}" for k, v in sorted(w.gateway.matchers().items()))
            extras.append(f"gateway {join}")
        lines.append(
            f"  {w.namespace}/{w.name}: {w.engine}, {p.model} on {p.gpu} TP{p.tp}, "
            f"replicas {w.min_replicas}..{w.max_replicas}, SLO TTFT {slo.ttft_s:g}s"
            f"+{slo.ttft_per_1k_s:g}s/1k TPOT {slo.tpot_s:g}s @ {slo.attainment_target:g}"
            + (f" [{', '.join(extras)}]" if extras else "")
        )
    lines.extend(f"warning: {warning}" for warning in config.warnings())
    return "\n".join(lines)
