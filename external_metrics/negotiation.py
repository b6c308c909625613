"""Content negotiation: we only ever answer JSON; decide whether the client can take it.

client-go sends ``Accept: <its content type>, */*``; kube-controller-manager's content type is
protobuf, so the HPA's requests say ``application/vnd.kubernetes.protobuf, */*`` and the
``*/*`` lets us answer JSON (client-go decodes by the response's Content-Type). The aggregator's
discovery asks for ``application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,...``
with a plain ``application/json`` fallback. Only an Accept that rules JSON out entirely (say,
protobuf alone) gets a 406, as a Kubernetes API server would answer. Pure.
"""

from __future__ import annotations

JSON_RANGES = frozenset({"application/json", "application/*", "*/*"})


def accepts_json(accept: str | None) -> bool:
    """True when an ``Accept`` header allows ``application/json`` (no header allows anything)."""
    if accept is None or not accept.strip():
        return True
    for part in accept.split(","):
        media, _, params = part.partition(";")
        if media.strip().lower() not in JSON_RANGES:
            continue
        if _quality(params) > 0:
            return True
    return False


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 1.0
    return 1.0
