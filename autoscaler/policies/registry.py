"""The one table of scaling policies: names, settings, sweeps, and how to build them.

A policy is named on the command line as ``NAME`` or ``NAME@SETTING`` (``hpa-queue@3``), and a
swept baseline appears under that label in every result. Everything that lists, validates or
builds policies reads this table, so a new policy is one row here; the CLI's help and error
messages come from it too.

``forecast`` (ours) is imported only when it is built, so the registry and the baselines work
without it and importing this module never pulls in its heavier dependencies.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import cast

from autoscaler.errors import InputError, UnknownNameError
from autoscaler.policies.apa import ApaPolicy
from autoscaler.policies.base import Actuation, Policy, PolicyContext
from autoscaler.policies.dynamo import DynamoPolicy
from autoscaler.policies.hpa_kv import HpaKvPolicy
from autoscaler.policies.hpa_queue import HpaQueuePolicy
from autoscaler.policies.kpa import KpaPolicy
from autoscaler.policies.static_peak import StaticPeakPolicy

PolicyFactory = Callable[[PolicyContext, float | None], Policy]


@dataclass(frozen=True, slots=True)
class SettingRange:
    """Valid values of a policy's main setting: ``low < x <= high`` (or ``low <= x``)."""

    low: float
    high: float
    low_inclusive: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value) or value > self.high:
            return False
        return value >= self.low if self.low_inclusive else value > self.low

    def describe(self) -> str:
        left = "[" if self.low_inclusive else "("
        return f"{left}{self.low:g}, {self.high:g}]"


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """One row of the table."""

    name: str
    factory: PolicyFactory
    actuation: Actuation
    help: str
    setting_name: str | None = None
    """What the ``@SETTING`` means; None when the policy takes no setting."""
    default_setting: float | None = None
    sweep: tuple[float, ...] = ()
    setting_range: SettingRange | None = None

    @property
    def takes_setting(self) -> bool:
        return self.setting_name is not None


def _make_forecast(ctx: PolicyContext, setting: float | None) -> Policy:
    """Build ours lazily: ``autoscaler.policies.forecast`` may not exist yet in a checkout."""
    module = importlib.import_module("autoscaler.policies.forecast")
    cls = module.ForecastPolicy
    return cast(Policy, cls(ctx, setting))


_TABLE: tuple[PolicyInfo, ...] = (
    PolicyInfo(
        name="apa",
        factory=ApaPolicy,
        actuation="native",
        help="AIBrix APA: ceil(N*KV/target) outside +-10 %, rate 2x, 300 s scale-down cooldown",
        setting_name="target KV-cache usage per replica",
        default_setting=0.5,
        sweep=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
        setting_range=SettingRange(0.0, 1.0),
    ),
    PolicyInfo(
        name="dynamo",
        factory=DynamoPolicy,
        actuation="native",
        help="Dynamo SLA planner: every 180 s, prefill + decode need with latency corrections",
        setting_name="throughput scale of the per-replica profile",
        default_setting=1.0,
        sweep=(0.7, 0.85, 1.0, 1.2),
        setting_range=SettingRange(0.0, 10.0),
    ),
    PolicyInfo(
        name="forecast",
        factory=_make_forecast,
        actuation="hpa",
        help="ours: forecast token work over the lead time / learned capacity, with guards",
        setting_name="scale of the learned capacity (below 1 buys head-room, above 1 trusts a "
        "replica with more; default 1)",
        setting_range=SettingRange(0.0, math.inf),
    ),
    PolicyInfo(
        name="hpa-kv",
        factory=HpaKvPolicy,
        actuation="hpa",
        help="llm-d WVA saturation: +1/-1 replica on spare KV and queue, through an HPA",
        setting_name="kvCacheThreshold (KV usage at which a replica is saturated)",
        default_setting=0.8,
        sweep=(0.6, 0.7, 0.8, 0.9),
        setting_range=SettingRange(0.1, 1.0),
    ),
    PolicyInfo(
        name="hpa-queue",
        factory=HpaQueuePolicy,
        actuation="hpa",
        help="GKE guidance: HPA AverageValue on waiting requests per replica",
        setting_name="waiting requests per replica (HPA AverageValue target)",
        default_setting=3.0,
        sweep=(1.0, 2.0, 3.0, 5.0, 8.0),
        setting_range=SettingRange(0.0, 10_000.0),
    ),
    PolicyInfo(
        name="kpa",
        factory=KpaPolicy,
        actuation="native",
        help="Knative KPA: 60 s stable / 6 s panic windows on running + waiting requests",
        setting_name="concurrency target per replica (70 % of it is used)",
        default_setting=32.0,
        sweep=(8.0, 16.0, 32.0, 64.0, 128.0),
        setting_range=SettingRange(0.0, 100_000.0),
    ),
    PolicyInfo(
        name="static-peak",
        factory=StaticPeakPolicy,
        actuation="native",
        help="no autoscaling: the peak replica count all the time",
    ),
)

POLICIES: Mapping[str, PolicyInfo] = MappingProxyType({p.name: p for p in _TABLE})
"""Name -> row, in alphabetical order (read-only)."""


def policy_names() -> list[str]:
    """Every known policy name, alphabetically."""
    return list(POLICIES)


def policy_info(name: str) -> PolicyInfo:
    """The row of ``name``; :class:`UnknownNameError` listing the known names otherwise."""
    try:
        return POLICIES[name]
    except KeyError:
        raise UnknownNameError("policy", name, policy_names()) from None


def format_setting(value: float) -> str:
    """How a setting appears in a label: ``3`` not ``3.0``, ``0.85`` as is."""
    return f"{value:g}"


def parse_policy_name(spec: str) -> tuple[str, float | None]:
    """``"hpa-queue@3"`` -> ``("hpa-queue", 3.0)``; ``"kpa"`` -> ``("kpa", None)``.

    Raises :class:`UnknownNameError` for an unknown name and :class:`InputError` for a setting
    that is not a number, is outside the policy's range, or is given to a policy without one.
    """
    name, sep, raw = spec.strip().partition("@")
    name = name.strip().lower()
    info = policy_info(name)
    if not sep:
        return name, None
    raw = raw.strip()
    if not info.takes_setting or info.setting_range is None:
        raise InputError(f"policy {name!r} takes no setting (got {spec!r})")
    try:
        value = float(raw)
    except ValueError:
        raise InputError(
            f"policy {name!r}: setting {raw!r} is not a number; {info.setting_name}, "
            f"in {info.setting_range.describe()}"
        ) from None
    if not info.setting_range.contains(value):
        raise InputError(
            f"policy {name!r}: setting {raw} is out of range; {info.setting_name} must be in "
            f"{info.setting_range.describe()}"
        )
    return name, value


def make_policy(spec: str, ctx: PolicyContext) -> Policy:
    """Build the policy named by ``spec`` (``NAME`` or ``NAME@SETTING``) for one run."""
    name, setting = parse_policy_name(spec)
    return POLICIES[name].factory(ctx, setting)


def expand_sweep(names: list[str]) -> list[str]:
    """Expand bare names of swept baselines into one ``NAME@SETTING`` per sweep point.

    ``["hpa-queue"]`` -> ``["hpa-queue@1", "hpa-queue@2", "hpa-queue@3", "hpa-queue@5",
    "hpa-queue@8"]``. Names with an explicit ``@`` and policies without a sweep are kept as
    given; every name is validated; duplicates are dropped, first occurrence kept.
    """
    out: list[str] = []
    for spec in names:
        name, setting = parse_policy_name(spec)
        info = POLICIES[name]
        if setting is not None:
            labels = [f"{name}@{format_setting(setting)}"]
        elif info.sweep:
            labels = [f"{name}@{format_setting(v)}" for v in info.sweep]
        else:
            labels = [name]
        for label in labels:
            if label not in out:
                out.append(label)
    return out
