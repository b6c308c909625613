"""The policy table: names, ``NAME@SETTING`` parsing, sweeps, construction and errors."""

from __future__ import annotations

import pytest

from autoscaler.core.slo import SloSpec
from autoscaler.errors import InputError, UnknownNameError
from autoscaler.policies import registry
from autoscaler.policies.apa import ApaPolicy
from autoscaler.policies.base import PolicyContext
from autoscaler.policies.dynamo import DynamoPolicy
from autoscaler.policies.hpa_kv import HpaKvPolicy
from autoscaler.policies.hpa_queue import HpaQueuePolicy
from autoscaler.policies.kpa import KpaPolicy
from autoscaler.policies.registry import (
    POLICIES,
    expand_sweep,
    make_policy,
    parse_policy_name,
    policy_info,
    policy_names,
)
from autoscaler.policies.static_peak import StaticPeakPolicy

CTX = PolicyContext(slo=SloSpec(), max_replicas=16, peak_replicas=10)

BASELINE_CLASSES = {
    "apa": ApaPolicy,
    "dynamo": DynamoPolicy,
    "hpa-kv": HpaKvPolicy,
    "hpa-queue": HpaQueuePolicy,
    "kpa": KpaPolicy,
    "static-peak": StaticPeakPolicy,
}


def test_names_are_alphabetical_and_complete() -> None:
    names = policy_names()
    assert names == sorted(names)
    assert names == ["apa", "dynamo", "forecast", "hpa-kv", "hpa-queue", "kpa", "static-peak"]
    assert all(POLICIES[n].help for n in names)


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("hpa-queue@3", ("hpa-queue", 3.0)),
        ("hpa-queue", ("hpa-queue", None)),
        ("kpa@16", ("kpa", 16.0)),
        (" KPA @ 16 ", ("kpa", 16.0)),
        ("hpa-kv@0.7", ("hpa-kv", 0.7)),
        ("dynamo@1.2", ("dynamo", 1.2)),
        ("apa@1", ("apa", 1.0)),
        ("static-peak", ("static-peak", None)),
        ("forecast", ("forecast", None)),
    ],
)
def test_parse_policy_name(spec: str, parsed: tuple[str, float | None]) -> None:
    assert parse_policy_name(spec) == parsed


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        parse_policy_name("hpa-cpu@3")
    err = info.value
    assert (err.kind, err.name) == ("policy", "hpa-cpu")
    assert err.known == tuple(policy_names())
    assert isinstance(err, InputError)
    with pytest.raises(UnknownNameError):
        make_policy("nope", CTX)
    with pytest.raises(UnknownNameError):
        expand_sweep(["kpa", "nope"])


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("hpa-queue@abc", ("'hpa-queue'", "not a number", "(0, 10000]")),
        ("hpa-queue@", ("'hpa-queue'", "not a number")),
        ("hpa-queue@0", ("'hpa-queue'", "out of range", "(0, 10000]")),
        ("hpa-queue@-3", ("out of range",)),
        ("hpa-queue@nan", ("out of range",)),
        ("kpa@inf", ("'kpa'", "out of range")),
        ("hpa-kv@1.5", ("'hpa-kv'", "kvCacheThreshold", "(0.1, 1]")),
        ("hpa-kv@0.1", ("'hpa-kv'", "(0.1, 1]")),
        ("apa@0", ("'apa'", "target KV-cache usage", "(0, 1]")),
        ("dynamo@0", ("'dynamo'", "throughput scale")),
        ("static-peak@3", ("'static-peak'", "takes no setting")),
    ],
)
def test_bad_setting_says_which_policy_and_what_range(spec: str, fragments: tuple[str]) -> None:
    with pytest.raises(InputError) as info:
        parse_policy_name(spec)
    assert not isinstance(info.value, UnknownNameError)
    for fragment in fragments:
        assert fragment in str(info.value)
    with pytest.raises(InputError):
        make_policy(spec, CTX)


@pytest.mark.parametrize("name", sorted(BASELINE_CLASSES))
def test_make_policy_builds_each_baseline_with_defaults(name: str) -> None:
    info = policy_info(name)
    policy = make_policy(name, CTX)
    assert isinstance(policy, BASELINE_CLASSES[name])
    assert policy.name == name
    assert policy.actuation == info.actuation
    assert policy.setting == info.default_setting  # type: ignore[attr-defined]
    assert (policy.hpa_spec() is None) == (info.actuation == "native")


@pytest.mark.parametrize("name", [n for n in sorted(BASELINE_CLASSES) if POLICIES[n].sweep])
def test_make_policy_applies_every_sweep_point(name: str) -> None:
    info = POLICIES[name]
    assert info.default_setting in info.sweep
    for label in expand_sweep([name]):
        policy = make_policy(label, CTX)
        assert policy.setting == parse_policy_name(label)[1]  # type: ignore[attr-defined]
        assert info.setting_range is not None
        assert info.setting_range.contains(policy.setting)  # type: ignore[attr-defined]


def test_expand_sweep() -> None:
    assert expand_sweep(["hpa-queue"]) == [
        "hpa-queue@1",
        "hpa-queue@2",
        "hpa-queue@3",
        "hpa-queue@5",
        "hpa-queue@8",
    ]
    assert expand_sweep(["dynamo"]) == ["dynamo@0.7", "dynamo@0.85", "dynamo@1", "dynamo@1.2"]
    assert expand_sweep(["hpa-kv"]) == ["hpa-kv@0.6", "hpa-kv@0.7", "hpa-kv@0.8", "hpa-kv@0.9"]
    assert expand_sweep(["kpa"]) == ["kpa@8", "kpa@16", "kpa@32", "kpa@64", "kpa@128"]
    # explicit settings and policies without a sweep are kept; labels are normalised, deduped
    assert expand_sweep(["forecast", "hpa-queue@4", "static-peak", "hpa-queue@4.0"]) == [
        "forecast",
        "hpa-queue@4",
        "static-peak",
    ]
    assert expand_sweep(["hpa-queue@3", "hpa-queue"])[:2] == ["hpa-queue@3", "hpa-queue@1"]
    assert len(expand_sweep(["hpa-queue@3", "hpa-queue"])) == 5
    assert expand_sweep([]) == []


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        registry.POLICIES["x"] = POLICIES["kpa"]  # type: ignore[index]


def test_forecast_is_built_lazily() -> None:
    policy = make_policy("forecast", CTX)
    assert policy.name == "forecast"
    assert policy.actuation == POLICIES["forecast"].actuation == "hpa"
