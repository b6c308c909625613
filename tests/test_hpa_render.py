"""The shipped behaviour, its ``autoscaling/v2`` form, and ``deploy/hpa/hpa-example.yaml``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.hpa import render
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR, behavior_to_dict, quantity, rules_to_dict
from autoscaler.hpa.controller import DEFAULT_K8S_BEHAVIOR
from autoscaler.hpa.spec import ExternalMetricTarget, HpaBehavior, HpaScalingRules, HpaSpec

REPO = Path(__file__).resolve().parents[1]


def test_committed_example_equals_a_fresh_render() -> None:
    """The YAML users apply is the behaviour the simulator ran; regenerate with
    ``python -m autoscaler.hpa.render`` after changing SHIPPED_BEHAVIOR."""
    committed = (REPO / render.EXAMPLE_PATH).read_text(encoding="utf-8")
    assert committed == render.example_yaml()


def test_example_parses_back_to_the_rendered_object() -> None:
    text = (REPO / render.EXAMPLE_PATH).read_text(encoding="utf-8")
    assert parse_yaml_subset(text) == render.render_hpa(
        "llama-70b", "llm", "llama-70b", render.EXAMPLE_SPEC
    )


def test_example_hpa_fields() -> None:
    hpa = render.render_hpa("llama-70b", "llm", "llama-70b", render.EXAMPLE_SPEC)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["kind"] == "HorizontalPodAutoscaler"
    assert hpa["metadata"] == {"name": "llama-70b", "namespace": "llm"}
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "llama-70b",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 20)
    assert spec["metrics"] == [
        {
            "type": "External",
            "external": {
                "metric": {
                    "name": "llm_desired_replicas",
                    "selector": {"matchLabels": {"workload": "llama-70b"}},
                },
                "target": {"type": "AverageValue", "averageValue": "1"},
            },
        }
    ]
    # The per-HPA tolerance is opt-in (Kubernetes 1.33+): the example is valid on every
    # supported minor, and tolerance=True writes the whole simulated behaviour.
    assert spec["behavior"] == behavior_to_dict(SHIPPED_BEHAVIOR, tolerance=False)
    assert all("tolerance" not in rules for rules in spec["behavior"].values())
    full = render.render_hpa("llama-70b", "llm", "llama-70b", render.EXAMPLE_SPEC, tolerance=True)
    assert full["spec"]["behavior"] == behavior_to_dict(SHIPPED_BEHAVIOR)


def test_value_target_and_selector() -> None:
    spec = HpaSpec(
        metrics=(ExternalMetricTarget("queue", "Value", 1.5, selector=(("workload", "a"),)),),
        behavior=DEFAULT_K8S_BEHAVIOR,
        min_replicas=0,
    )
    (metric,) = render.render_hpa("a", "ns", "a", spec)["spec"]["metrics"]
    assert metric["external"] == {
        "metric": {"name": "queue", "selector": {"matchLabels": {"workload": "a"}}},
        "target": {"type": "Value", "value": "1500m"},
    }


def test_shipped_behavior_wire_form() -> None:
    assert behavior_to_dict(SHIPPED_BEHAVIOR) == {
        "scaleUp": {
            "stabilizationWindowSeconds": 0,
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15},
            ],
            "selectPolicy": "Max",
            "tolerance": "0",
        },
        "scaleDown": {
            "stabilizationWindowSeconds": 300,
            "policies": [
                {"type": "Percent", "value": 10, "periodSeconds": 60},
                {"type": "Pods", "value": 1, "periodSeconds": 60},
            ],
            "selectPolicy": "Max",
            "tolerance": "0",
        },
    }


def test_tolerance_only_when_set_and_empty_policies_omitted() -> None:
    assert rules_to_dict(HpaScalingRules(0, (), "Disabled", tolerance=0.05)) == {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Disabled",
        "tolerance": "50m",
    }
    assert "tolerance" not in rules_to_dict(DEFAULT_K8S_BEHAVIOR.scale_up)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1"),
        (2.0, "2"),
        (100, "100"),
        (1.5, "1500m"),
        (0.1, "100m"),
        (0.05, "50m"),
        (0.0005, "500u"),
        (1e-9, "1n"),
        (-0.5, "-500m"),
        (0.0, "0"),
    ],
)
def test_quantity(value: float, text: str) -> None:
    assert quantity(value) == text


@pytest.mark.parametrize("value", [1e-10, float("nan"), float("inf")])
def test_quantity_rejects_what_no_quantity_holds(value: float) -> None:
    with pytest.raises(ValueError):
        quantity(value)


def test_render_cli_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deploy" / "hpa" / "hpa.yaml"
    assert render.main(["--out", str(out), "--check"]) == 1
    assert render.main(["--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render.example_yaml()
    assert render.main(["--out", str(out), "--check"]) == 0
    out.write_text("stale\n", encoding="utf-8")
    assert render.main(["--out", str(out), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("doc", "text"),
    [
        ({"a": "1"}, 'a: "1"\n'),
        ({"a": "true"}, 'a: "true"\n'),
        ({"a": "No"}, 'a: "No"\n'),
        ({"a": ""}, 'a: ""\n'),
        ({"a": "x: y"}, 'a: "x: y"\n'),
        ({"a": True, "b": None, "c": 3}, "a: true\nb: null\nc: 3\n"),
        ({"a": {}, "b": []}, "a: {}\nb: []\n"),
        ({"a": [1, {"b": 2, "c": [3]}]}, "a:\n- 1\n- b: 2\n  c:\n  - 3\n"),
    ],
)
def test_to_yaml_quotes_what_yaml_would_misread(doc: dict[str, Any], text: str) -> None:
    assert render.to_yaml(doc) == text
    assert parse_yaml_subset(text) == doc


json_scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=12)
keys = st.text(alphabet="abcXYZ_-./019 ", min_size=1, max_size=8)
documents = st.recursive(
    st.dictionaries(keys, json_scalars, max_size=4),
    lambda inner: st.dictionaries(
        keys,
        json_scalars | inner | st.lists(json_scalars | inner, max_size=3),
        max_size=4,
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(documents)
def test_to_yaml_round_trips(doc: dict[str, Any]) -> None:
    assert parse_yaml_subset(render.to_yaml(doc)) == doc


def test_every_behavior_setting_is_reachable_from_one_place() -> None:
    """deploy/ and the simulator share SHIPPED_BEHAVIOR; nothing else defines a behaviour."""
    assert render.EXAMPLE_SPEC.behavior is SHIPPED_BEHAVIOR
    assert isinstance(SHIPPED_BEHAVIOR, HpaBehavior)


# --- a reader for exactly the YAML subset to_yaml writes (PyYAML is not a dependency) --------


def parse_yaml_subset(text: str) -> Any:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines == ["{}"]:
        return {}
    pos = 0

    def indent_of(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    def scalar(token: str) -> Any:
        if token.startswith('"'):
            return json.loads(token)
        fixed: dict[str, Any] = {"true": True, "false": False, "null": None, "{}": {}, "[]": []}
        if token in fixed:
            return fixed[token]
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        return token

    def split_key(content: str) -> tuple[str, str]:
        if content.startswith('"'):
            decoder = json.JSONDecoder()
            key, end = decoder.raw_decode(content)
            return key, content[end + 1 :].strip()
        key, _, rest = content.partition(":")
        return key, rest.strip()

    def starts_mapping(item: str) -> bool:
        if item.startswith('"'):
            _, end = json.JSONDecoder().raw_decode(item)
            return item[end:].startswith(":")
        return ":" in item

    def block(indent: int) -> Any:
        if lines[pos][indent:].startswith("- "):
            return sequence(indent)
        return mapping(indent)

    def mapping(indent: int) -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        while pos < len(lines) and indent_of(lines[pos]) == indent:
            content = lines[pos][indent:]
            if content.startswith("- "):
                break
            key, rest = split_key(content)
            pos += 1
            out[key] = scalar(rest) if rest else block(indent_of(lines[pos]))
        return out

    def sequence(indent: int) -> list[Any]:
        nonlocal pos
        out: list[Any] = []
        while pos < len(lines) and indent_of(lines[pos]) == indent:
            content = lines[pos][indent:]
            if not content.startswith("- "):
                break
            item = content[2:]
            if not starts_mapping(item):
                out.append(scalar(item))
                pos += 1
            else:
                lines[pos] = " " * (indent + 2) + item
                out.append(mapping(indent + 2))
        return out

    return block(0)
