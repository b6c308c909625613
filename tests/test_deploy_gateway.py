"""The EPP ServiceMonitor example and the gateway config example agree with what we query."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from autoscaler.config import GatewayConfig, load_config
from autoscaler.engines import gateway

REPO = Path(__file__).resolve().parents[1]
MONITOR = REPO / "deploy" / "examples" / "epp-servicemonitor.yaml"
CONFIG = REPO / "deploy" / "examples" / "llm-autoscaler.yaml"
SCHEMA = REPO / "tests" / "schemas" / "monitoring.coreos.com_v1_servicemonitor.json"


def monitor() -> dict[str, Any]:
    (obj,) = list(yaml.safe_load_all(MONITOR.read_text(encoding="utf-8")))
    return dict(obj)


def test_the_epp_servicemonitor_is_valid_against_the_crd_schema():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(
        e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(monitor())
    )
    assert errors == []


def test_the_relabeling_puts_the_pool_name_where_the_config_joins_on_it():
    (endpoint,) = monitor()["spec"]["endpoints"]
    (rule,) = endpoint["relabelings"]
    assert rule["targetLabel"] == GatewayConfig.model_fields["pool_label"].default
    assert rule["sourceLabels"] == ["__meta_kubernetes_service_name"]
    # Prometheus anchors the regex; the chart names the EPP's Service <pool>-epp
    match = re.fullmatch(rule["regex"], "llama-70b-epp")
    assert match is not None
    assert rule["replacement"].replace("$1", match.group(1)) == "llama-70b"


def test_the_example_gateway_workload_is_the_monitored_pool_in_its_namespace():
    config = load_config(CONFIG)
    fronted = [w for w in config.workloads if w.gateway is not None]
    assert fronted, "the example config has no gateway-fronted workload"
    spec = monitor()
    for w in fronted:
        assert w.gateway is not None
        assert w.gateway.pool == "llama-70b"
        assert w.namespace in spec["spec"]["namespaceSelector"]["matchNames"]
        join = gateway.GatewayJoin.of(w.namespace, w.gateway)
        labels = {"namespace": w.namespace, "inference_pool": "llama-70b", "model_name": "x"}
        assert join.matches(labels, "namespace")


def test_the_schema_check_would_catch_a_broken_monitor():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = monitor()
    broken["spec"]["endpoints"][0]["relabelings"] = "inference_pool"
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(broken))
