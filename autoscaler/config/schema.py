"""The service configuration's schema: pydantic models of one YAML file (docs/configuration.md).

    service:                 GlobalConfig   (Prometheus, tick, staleness, ports, TLS, shadow)
    workloads: [...]         WorkloadConfig (engine, pod selector, profile, SLO, bounds, modelcar)

Every model forbids unknown fields so a typo (``min_replica``) is an error, not a silent default.
:func:`~autoscaler.config.loading.load_config` turns every failure (missing file, malformed YAML, an
empty file, a wrong field) into one :class:`~autoscaler.errors.InputError` whose message names the
file, the field path (``workloads[1].slo.tpot_s``) and the problem; no pydantic traceback reaches a
user.

Soft problems (a modelcar image pinned by tag only) are not errors: :meth:`ServiceConfig.warnings`
lists them, each with its field path, and :func:`~autoscaler.config.loading.describe` prints
them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from autoscaler.config.fields import (
    DNS1123_LABEL,
    DNS1123_SUBDOMAIN,
    IMAGE_REF,
    LABEL_NAME,
    LABEL_VALUE,
    Strict,
    located,
    one_of,
    prom_duration_seconds,
)
from autoscaler.config.gateway import GatewayConfig
from autoscaler.config.prefetch import PrefetchConfig
from autoscaler.config.roles import RoleName, RolesConfig, TargetKind
from autoscaler.core.replica_states import DEFAULT_PENDING_TIMEOUT_S
from autoscaler.core.slo import SloSpec
from autoscaler.engines.registry import GPU_MEMORY, engine_names

KNOWN_ENGINES: Final[tuple[str, ...]] = tuple(n for n in engine_names() if n != GPU_MEMORY.name)
"""Engine profile names accepted by default: the registry's serving engines (``dcgm`` supplies
GPU memory to all of them, it serves no requests); :func:`load_config` takes another list."""

KNOWN_MODELS: Final[tuple[str, ...]] = ("bloom-176b", "llama2-70b")
KNOWN_GPUS: Final[tuple[str, ...]] = ("a100", "h100")
KNOWN_TP: Final[tuple[int, ...]] = (2, 4, 8)

ENGINES_CONTEXT_KEY: Final = "engines"
_DEFAULT_SLO: Final = SloSpec()


class PortsConfig(Strict):
    """Listening ports of ``serve`` (DESIGN.md, "Contracts")."""

    https: int = Field(default=6443, ge=1, le=65535)
    """External Metrics API and the JSON API ``/v1/...`` (TLS)."""
    metrics: int = Field(default=9090, ge=1, le=65535)
    """Plain HTTP: ``/metrics``, ``/healthz``, ``/readyz``."""
    grpc: int = Field(default=9443, ge=1, le=65535)
    """KEDA external scaler."""

    @model_validator(mode="after")
    def _distinct(self) -> PortsConfig:
        seen: dict[int, str] = {}
        for name in ("https", "metrics", "grpc"):
            port: int = getattr(self, name)
            if port in seen:
                raise located(name, f"port {port} is already used by ports.{seen[port]}")
            seen[port] = name
        return self


class GlobalConfig(Strict):
    """Settings shared by every workload."""

    prometheus_url: str = "http://localhost:9090"
    prometheus_timeout_s: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    """Per-request timeout (connect and read) for the Prometheus API; the tick budget caps it."""
    prometheus_partial_response: bool | None = None
    """Thanos Querier's ``partial_response`` (None: its default). false: a store that does not
    answer fails the query and the tick holds; true: its series are left out (docs/scale.md)."""
    prometheus_tenant: str | None = Field(
        default=None, min_length=1, max_length=150, pattern=r"^[A-Za-z0-9!_.*'()|-]+$"
    )
    """Mimir's (and Cortex's) tenant, sent as the ``X-Scope-OrgID`` header with every query
    (None: no header). ``a|b`` asks several tenants at once where Mimir's tenant federation is
    on. Mimir's own rule for a tenant ID: at most 150 of these characters."""
    query_matchers: dict[str, str] = {}
    """A shard's part of the fleet: label to regular expression (RE2, fully anchored), added as
    ``label=~"regex"`` to every engine series the tick and the backfill read, so Prometheus
    sends this shard's rows only (``namespace: "team-a|team-b"``; docs/scale.md)."""
    tick_s: float = Field(default=15.0, gt=0)
    rate_window: str = "1m"
    scrape_interval_s: float = Field(default=15.0, gt=0)
    staleness_s: float | None = Field(default=None, gt=0)
    pending_timeout_s: float = Field(default=DEFAULT_PENDING_TIMEOUT_S, gt=0)
    tick_budget_s: float | None = Field(default=None, gt=0)
    """Time a tick may spend on Prometheus, retries included (default: half a tick). Past it
    the tick holds ("Prometheus slow") and the next one starts on time."""
    shadow: bool = False
    ports: PortsConfig = PortsConfig()
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    keda_client_ca_file: str | None = None
    """PEM bundle of the CA(s) that sign KEDA's client certificate. Given, the KEDA gRPC port
    (``ports.grpc``) completes a TLS handshake only with a client certificate that chains to
    it (KEDA's ``TriggerAuthentication`` ``tlsClientCert``/``tlsClientKey``): without it, anyone
    who reaches the port reads every workload's values and names."""
    keda_require_client_cert: bool = False
    """Refuse to start unless ``keda_client_ca_file`` is set: a latch for clusters where the
    KEDA port must never be open to unauthenticated clients."""
    replica_source: Literal["kubernetes", "kube-state-metrics"] = "kubernetes"
    """Where replica states come from: the pod watch, or kube-state-metrics in Prometheus
    (``autoscaler/live/ksm_replicas.py``) where the service may not watch pods."""
    grpc_workers: int = Field(default=16, ge=1, le=1024)
    """Worker threads of the KEDA gRPC server. Each open ``StreamIsActive`` stream (one per
    ``external-push`` ScaledObject) holds one for its lifetime; the unary calls share the rest."""
    api_processes: int = Field(default=1, ge=1, le=64)
    """Processes serving the HTTPS API; more than 1 share its port, each answering from a copy
    of the store (``autoscaler/cli/api_workers.py``, docs/serve.md "API processes")."""

    @field_validator("prometheus_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s]*)?", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("query_matchers")
    @classmethod
    def _matchers(cls, value: dict[str, str]) -> dict[str, str]:
        for label, pattern in value.items():
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label) or label.startswith("__"):
                raise ValueError(f"{label!r} is not a Prometheus label name")
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"{label}: {pattern!r} is not a regular expression ({e})") from e
        return value

    @field_validator("rate_window")
    @classmethod
    def _window(cls, value: str) -> str:
        if prom_duration_seconds(value) <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @field_validator(
        "tick_s", "scrape_interval_s", "staleness_s", "pending_timeout_s", "tick_budget_s"
    )
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _budget_within_tick(self) -> GlobalConfig:
        if self.tick_budget_s is not None and self.tick_budget_s >= self.tick_s:
            raise located(
                "tick_budget_s",
                f"must be shorter than tick_s ({self.tick_s:g}s), got {self.tick_budget_s:g}s",
            )
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> GlobalConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            missing = "tls_key_file" if self.tls_key_file is None else "tls_cert_file"
            raise located(missing, "tls_cert_file and tls_key_file must be given together")
        return self

    @model_validator(mode="after")
    def _keda_mtls(self) -> GlobalConfig:
        if self.keda_require_client_cert and self.keda_client_ca_file is None:
            raise located(
                "keda_require_client_cert",
                "is true but keda_client_ca_file is not set: give the PEM file of the CA that "
                "signs KEDA's client certificate",
            )
        return self

    @property
    def rate_window_s(self) -> float:
        """The rate window in seconds."""
        return prom_duration_seconds(self.rate_window)

    @property
    def effective_tick_budget_s(self) -> float:
        """What a tick may spend on Prometheus: ``tick_budget_s`` or half a tick."""
        return self.tick_budget_s if self.tick_budget_s is not None else 0.5 * self.tick_s

    @property
    def effective_staleness_s(self) -> float:
        """Data older than this is stale: ``staleness_s`` or 2 ticks + the scrape interval."""
        if self.staleness_s is not None:
            return self.staleness_s
        return 2.0 * self.tick_s + self.scrape_interval_s


class ProfileConfig(Strict):
    """The measured performance profile that seeds the workload's capacity."""

    model: str = "llama2-70b"
    gpu: str = "h100"
    tp: int = 4

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return one_of("model", value, KNOWN_MODELS)

    @field_validator("gpu")
    @classmethod
    def _gpu(cls, value: str) -> str:
        return one_of("gpu", value, KNOWN_GPUS)

    @field_validator("tp")
    @classmethod
    def _tp(cls, value: int) -> int:
        if value not in KNOWN_TP:
            raise ValueError(f"tensor-parallel degree {value} not measured; known: 2, 4, 8")
        return value


class SloConfig(Strict):
    """Per-request latency budgets and the attainment target (DESIGN.md, "SLO")."""

    ttft_s: float = Field(default=_DEFAULT_SLO.ttft_s, gt=0)
    ttft_per_1k_s: float = Field(default=_DEFAULT_SLO.ttft_per_1k_s, ge=0)
    tpot_s: float = Field(default=_DEFAULT_SLO.tpot_s, gt=0)
    attainment_target: float = Field(default=_DEFAULT_SLO.attainment_target, gt=0, lt=1)

    @field_validator("ttft_s", "ttft_per_1k_s", "tpot_s")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    def to_spec(self) -> SloSpec:
        """The :class:`~autoscaler.core.slo.SloSpec` the policy and the simulator use."""
        return SloSpec(
            ttft_s=self.ttft_s,
            ttft_per_1k_s=self.ttft_per_1k_s,
            tpot_s=self.tpot_s,
            attainment_target=self.attainment_target,
        )


class WorkloadConfig(Strict):
    """One scaled workload: a Deployment, StatefulSet or LeaderWorkerSet of model-server pods;
    or, with ``roles``, a disaggregated workload of two such targets (:meth:`targets`)."""

    namespace: str
    name: str
    kind: TargetKind = "Deployment"
    """The object the HPA scales: its ``spec.replicas`` is read, Events are recorded on it and
    prefetch Jobs belong to it."""
    engine: str
    selector: dict[str, str] = Field(default_factory=dict)
    """The workload's pods (required unless ``roles`` gives one per role)."""
    roles: RolesConfig | None = None
    """Prefill and decode pools, each its own scale target (:mod:`autoscaler.config.roles`)."""
    role: RoleName | None = None
    """Set on the targets :meth:`targets` makes of a workload with ``roles``."""
    group: str | None = None
    """With ``role``: the name of the workload that declared the roles."""
    profile: ProfileConfig = ProfileConfig()
    slo: SloConfig = SloConfig()
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=10, ge=1)
    image: str | None = None
    image_size_gb: float | None = Field(default=None, gt=0)
    prefetch: PrefetchConfig = PrefetchConfig()
    shadow: bool | None = None
    capacity_seed: float | None = Field(default=None, gt=0)
    gateway: GatewayConfig | None = None
    """The endpoint picker in front of the workload; given, demand is read where it arrives."""

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if len(value) > 63 or not DNS1123_LABEL.fullmatch(value):
            raise ValueError(f"{value!r} is not a Kubernetes namespace name (DNS-1123 label)")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 253 or not DNS1123_SUBDOMAIN.fullmatch(value):
            raise ValueError(f"{value!r} is not a Kubernetes object name (DNS-1123 subdomain)")
        return value

    @field_validator("engine")
    @classmethod
    def _engine(cls, value: str, info: ValidationInfo) -> str:
        known: Sequence[str] = KNOWN_ENGINES
        if isinstance(info.context, Mapping) and ENGINES_CONTEXT_KEY in info.context:
            known = tuple(info.context[ENGINES_CONTEXT_KEY])
        return one_of("engine", value, tuple(sorted(known)))

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            prefix, _, name = key.rpartition("/")
            if (
                (prefix and not DNS1123_SUBDOMAIN.fullmatch(prefix))
                or len(name) > 63
                or not LABEL_NAME.fullmatch(name)
            ):
                raise ValueError(f"{key!r} is not a valid label key")
            if len(label) > 63 or not LABEL_VALUE.fullmatch(label):
                raise ValueError(f"{label!r} (label {key!r}) is not a valid label value")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE_REF.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an OCI image reference "
                "(e.g. registry.example.com/models/llama@sha256:<64 hex>)"
            )
        return value

    @field_validator("capacity_seed", "image_size_gb")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadConfig:
        if self.min_replicas > self.max_replicas:
            raise located(
                "min_replicas",
                f"min_replicas ({self.min_replicas}) is greater than "
                f"max_replicas ({self.max_replicas})",
            )
        if self.prefetch.enabled and self.image is None:
            raise located("prefetch.enabled", "prefetch needs the workload's modelcar image")
        if (self.role is None) != (self.group is None):
            raise located("role", "role and group are set together (by roles:), or neither")
        if self.roles is None:
            if not self.selector:
                raise located("selector", "give the workload's pod selector (or roles:)")
            return self
        per_role = ("selector", "kind", "min_replicas", "max_replicas")
        for name in (*per_role, "role", "gateway", "capacity_seed"):
            if name in self.model_fields_set:
                why = (
                    f"is set per role with roles: (roles.prefill.{name}, roles.decode.{name})"
                    if name in per_role
                    else "is not supported with roles: yet (docs/disaggregation.md)"
                )
                raise located(name, why)
        return self

    def targets(self) -> tuple[WorkloadConfig, ...]:
        """The scale targets of this workload: itself, or one per role (prefill, decode), each
        a workload of its own named after its target, with ``role`` and ``group`` set."""
        if self.roles is None:
            return (self,)
        return tuple(
            self.model_copy(
                update={
                    "name": r.name,
                    "kind": r.kind,
                    "selector": dict(r.selector),
                    "min_replicas": r.min_replicas,
                    "max_replicas": r.max_replicas,
                    "roles": None,
                    "role": role,
                    "group": self.name,
                }
            )
            for role, r in self.roles.items()
        )

    @property
    def key(self) -> tuple[str, str]:
        """``(namespace, name)``, unique in a config."""
        return (self.namespace, self.name)

    def image_warning(self) -> str | None:
        """Why the image reference is not ideal for prefetch, or None."""
        if self.image is None:
            return None
        match = IMAGE_REF.fullmatch(self.image)
        if match is None or match.group("digest"):
            return None
        if match.group("tag") is None:
            return "no tag or digest (means :latest); pin a digest (@sha256:...)"
        return (
            "tag only; pin a digest (@sha256:...) so prefetch pulls exactly what the pod runs "
            "and imagePullPolicy IfNotPresent hits the prefetched copy"
        )


class ServiceConfig(Strict):
    """The whole file: global settings under ``service`` and the list of ``workloads``."""

    service: GlobalConfig = GlobalConfig()
    workloads: tuple[WorkloadConfig, ...]

    @model_validator(mode="after")
    def _unique(self) -> ServiceConfig:
        if not self.workloads:
            raise located("workloads", "the config needs at least one workload")
        first: dict[tuple[str, str], str] = {}
        for i, workload in enumerate(self.workloads):
            where = f"workloads[{i}].name"
            names = [(workload.key, where)]
            if workload.roles is not None:
                names += [
                    ((t.namespace, t.name), f"workloads[{i}].roles.{t.role}.name")
                    for t in workload.targets()
                ]
            for key, at in names:
                if key in first:
                    raise located(
                        at, f"duplicate workload {key[0]}/{key[1]} (first at {first[key]})"
                    )
                first[key] = at
        return self

    @property
    def targets(self) -> tuple[WorkloadConfig, ...]:
        """Every scale target: the workloads, each with roles replaced by its roles' targets.
        This is what the service watches, queries, decides and publishes for."""
        return tuple(t for w in self.workloads for t in w.targets())

    def workload(self, namespace: str, name: str) -> WorkloadConfig:
        """The scale target ``namespace/name``; ``KeyError`` if the config has none."""
        for workload in self.targets:
            if workload.namespace == namespace and workload.name == name:
                return workload
        raise KeyError(f"no workload {namespace}/{name} in the config")

    def shadow(self, workload: WorkloadConfig) -> bool:
        """Whether ``workload`` runs in shadow mode: its own setting, else the global one."""
        return self.service.shadow if workload.shadow is None else workload.shadow

    def warnings(self) -> list[str]:
        """Non-fatal problems, each prefixed by its field path (as declared)."""
        found = []
        for i, workload in enumerate(self.workloads):
            problem = workload.image_warning()
            if problem is not None:
                found.append(f"workloads[{i}].image: {problem}")
        return found
