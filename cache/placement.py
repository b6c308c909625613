"""Where the workload's pods may go: node selector, node affinity and tolerations, as pure data.

The planner must only warm nodes the scheduler could put a replica on, and must rank them the
way the scheduler would. This module holds the scheduler's *filter* rules that depend on the pod
spec (``NodeAffinity`` incl. ``nodeSelector``, ``TaintToleration``) and the *score* parts that
depend on it (preferred node affinity, ``PreferNoSchedule`` taints), after
``k8s.io/component-helpers/scheduling/corev1`` and the scheduler plugins of the same names:

- ``nodeSelector``: every key must equal; ``requiredDuringScheduling...nodeSelectorTerms``: the
  terms are ORed, the requirements inside a term ANDed; an empty term list matches nothing.
- Operators ``In``, ``NotIn``, ``Exists``, ``DoesNotExist``, ``Gt``, ``Lt`` on labels, and
  ``matchFields`` on ``metadata.name`` (the only field the scheduler supports).
- A taint with effect ``NoSchedule`` or ``NoExecute`` must be tolerated; ``PreferNoSchedule``
  only lowers the score. A toleration with an empty key and ``Exists`` tolerates everything; an
  empty effect matches every effect.

:func:`placement_from_pod_spec` reads these from a pod template's ``spec`` (the Deployment's), so
the prefetcher never needs them configured twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cache.inventory import NodeState, Taint

__all__ = [
    "Placement",
    "PreferredTerm",
    "Requirement",
    "SelectorTerm",
    "Toleration",
    "placement_from_pod_spec",
    "tolerates",
]

_OPERATORS: Final = frozenset({"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"})
_BLOCKING: Final = frozenset({"NoSchedule", "NoExecute"})


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op, present = self.operator, self.key in labels
        if op == "Exists":
            return present
        if op == "DoesNotExist":
            return not present
        if op == "In":
            return present and labels[self.key] in self.values
        if op == "NotIn":
            return not present or labels[self.key] not in self.values
        if op in ("Gt", "Lt") and present and len(self.values) == 1:
            try:
                have, bound = int(labels[self.key]), int(self.values[0])
            except ValueError:
                return False
            return have > bound if op == "Gt" else have < bound
        return False


@dataclass(frozen=True, slots=True)
class SelectorTerm:
    """One ``nodeSelectorTerm``: all its requirements must hold (an empty term matches none)."""

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()

    def matches(self, node: NodeState) -> bool:
        if not self.expressions and not self.fields:
            return False
        fields = {"metadata.name": node.name}
        return all(r.matches(node.labels) for r in self.expressions) and all(
            r.matches(fields) for r in self.fields
        )


@dataclass(frozen=True, slots=True)
class PreferredTerm:
    weight: int
    term: SelectorTerm


@dataclass(frozen=True, slots=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: Taint) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return bool(self.key) and self.value == taint.value


def tolerates(tolerations: Sequence[Toleration], taint: Taint) -> bool:
    return any(t.tolerates(taint) for t in tolerations)


@dataclass(frozen=True, slots=True)
class Placement:
    """The scheduling constraints of the workload's pods that depend on the node."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    required: tuple[SelectorTerm, ...] | None = None
    """``requiredDuringSchedulingIgnoredDuringExecution`` terms (ORed); None when absent."""
    preferred: tuple[PreferredTerm, ...] = ()
    tolerations: tuple[Toleration, ...] = ()

    def rejects(self, node: NodeState) -> str | None:
        """Why the scheduler's filters would never put the pod on ``node``; None if it may."""
        for key, value in self.node_selector.items():
            if node.labels.get(key) != value:
                return f"nodeSelector mismatch: {key}={value}"
        if self.required is not None and not any(t.matches(node) for t in self.required):
            return "required node affinity does not match"
        for taint in node.taints:
            if taint.effect in _BLOCKING and not tolerates(self.tolerations, taint):
                return f"untolerated taint: {taint.key}={taint.value}:{taint.effect}"
        return None

    def preferred_weight(self, node: NodeState) -> int:
        """Sum of the weights of the preferred terms ``node`` matches (NodeAffinity's raw score)."""
        return sum(p.weight for p in self.preferred if p.term.matches(node))

    def intolerable_soft_taints(self, node: NodeState) -> int:
        """``PreferNoSchedule`` taints not tolerated (TaintToleration's raw score, lower better)."""
        return sum(
            1
            for taint in node.taints
            if taint.effect == "PreferNoSchedule" and not tolerates(self.tolerations, taint)
        )


# -- reading a pod spec ------------------------------------------------------------------------


class PlacementError(ValueError):
    """The pod template's scheduling fields are malformed; the message names the field."""


def _requirements(raw: object, where: str) -> tuple[Requirement, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PlacementError(f"{where} is not a list")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise PlacementError(f"{where}[{i}] has no key")
        op = item.get("operator")
        if op not in _OPERATORS:
            raise PlacementError(f"{where}[{i}].operator {op!r} is not one of {sorted(_OPERATORS)}")
        values = item.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise PlacementError(f"{where}[{i}].values is not a list of strings")
        out.append(Requirement(str(item["key"]), str(op), tuple(values)))
    return tuple(out)


def _term(raw: object, where: str) -> SelectorTerm:
    if not isinstance(raw, Mapping):
        raise PlacementError(f"{where} is not a node selector term")
    return SelectorTerm(
        _requirements(raw.get("matchExpressions"), f"{where}.matchExpressions"),
        _requirements(raw.get("matchFields"), f"{where}.matchFields"),
    )


def placement_from_pod_spec(spec: Mapping[str, Any]) -> Placement:
    """The :class:`Placement` of a pod spec (``Deployment.spec.template.spec``).

    Raises :class:`PlacementError` naming the field when a part is malformed (the API server
    would have refused such a Deployment, so this only guards against hand-made input).
    """
    selector_raw = spec.get("nodeSelector") or {}
    if not isinstance(selector_raw, Mapping):
        raise PlacementError("nodeSelector is not a map")
    selector = {str(k): str(v) for k, v in selector_raw.items()}
    affinity = spec.get("affinity") or {}
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, Mapping) else None
    node_affinity = node_affinity if isinstance(node_affinity, Mapping) else {}
    required: tuple[SelectorTerm, ...] | None = None
    req_raw = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if isinstance(req_raw, Mapping):
        terms = req_raw.get("nodeSelectorTerms") or []
        if not isinstance(terms, list):
            raise PlacementError("nodeAffinity.required...nodeSelectorTerms is not a list")
        required = tuple(
            _term(t, f"nodeAffinity.required...nodeSelectorTerms[{i}]") for i, t in enumerate(terms)
        )
    preferred = []
    pref_raw = node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []
    if not isinstance(pref_raw, list):
        raise PlacementError("nodeAffinity.preferred... is not a list")
    for i, item in enumerate(pref_raw):
        where = f"nodeAffinity.preferred...[{i}]"
        if not isinstance(item, Mapping):
            raise PlacementError(f"{where} is not a preferred term")
        weight = item.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
            raise PlacementError(f"{where}.weight must be an integer 1-100")
        preferred.append(
            PreferredTerm(weight, _term(item.get("preference"), f"{where}.preference"))
        )
    tolerations = []
    for i, item in enumerate(spec.get("tolerations") or []):
        if not isinstance(item, Mapping):
            raise PlacementError(f"tolerations[{i}] is not a toleration")
        op = item.get("operator") or "Equal"
        if op not in ("Equal", "Exists"):
            raise PlacementError(f"tolerations[{i}].operator {op!r} is not Equal or Exists")
        tolerations.append(
            Toleration(
                key=str(item.get("key") or ""),
                operator=str(op),
                value=str(item.get("value") or ""),
                effect=str(item.get("effect") or ""),
            )
        )
    return Placement(selector, required, tuple(preferred), tuple(tolerations))
