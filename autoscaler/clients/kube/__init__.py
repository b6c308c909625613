"""The one client package for the Kubernetes API (STYLE.md, lesson 2).

- this module: building the ``kubernetes.client.ApiClient``, the error tree, reading raw JSON.
- :mod:`~autoscaler.clients.kube.pods`: :class:`PodWatcher`, replica states from a pod watch.
- :mod:`~autoscaler.clients.kube.workloads`: the workload's current HPA (shadow mode) and
  :class:`EventRecorder` (core/v1 Events on the Deployment).
- :mod:`~autoscaler.clients.kube.reviews`: TokenReview / SubjectAccessReview (the aggregated API).
- :mod:`~autoscaler.clients.kube.jobs`, :mod:`~autoscaler.clients.kube.nodes`,
  :mod:`~autoscaler.clients.kube.leases`: prefetch Jobs, node inventory and labels, leader Leases.

Error tree (everything a caller has to catch is a :class:`KubernetesError`)::

    ExternalSystemError (autoscaler.errors)
    └── KubernetesError                 a call failed: ``.operation``, ``.status`` (HTTP status,
        │                               None when the server was not reached), ``.reason``
        └── KubernetesConfigError       no usable connection settings (also an InputError:
                                        a bad kubeconfig path is the user's to fix)

:func:`kubernetes_error` turns whatever the ``kubernetes``/``urllib3`` stack raised into one
of these, with a message that says which call, against which server, and what went wrong (the
``Status.message`` the API server sent, when it sent one), so logs carry one readable line and
the cause stays chained for a debugger.

Reads use ``_preload_content=False`` and :func:`read_json`: the callers work on the API's plain
camelCase dicts (as :mod:`autoscaler.core.replica_states` does), and skipping the generated models
also skips their client-side validation, which would reject a whole list because one object
lacks a field the classifier does not even need.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

import urllib3
from kubernetes import client, config

from autoscaler.errors import ExternalSystemError, InputError

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "WORKLOAD_KINDS",
    "KubernetesConfigError",
    "KubernetesError",
    "api_host",
    "build_api_client",
    "call_json",
    "format_selector",
    "kubernetes_error",
    "read_json",
    "read_workload_call",
]

WORKLOAD_KINDS: Final[tuple[str, ...]] = ("Deployment", "StatefulSet")
"""The ``apps/v1`` kinds a workload can be: the object the HPA scales, the pods' template, the
owner of prefetch Jobs and the object Events are recorded on."""

DEFAULT_REQUEST_TIMEOUT: Final[tuple[float, float]] = (5.0, 30.0)
"""(connect, read) seconds for one ordinary (non-watch) API call."""


class KubernetesError(ExternalSystemError):
    """A Kubernetes API call failed; the message names the call, the server and the problem."""

    def __init__(
        self,
        operation: str,
        problem: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        host: str | None = None,
    ) -> None:
        self.operation = operation
        self.problem = problem
        self.status = status
        """HTTP status of the API's answer; None when no answer came (unreachable, timeout)."""
        self.reason = reason
        """The API's ``Status.reason`` (``NotFound``, ``Forbidden``, ``Expired``...), if any."""
        self.host = host
        where = f" at {host}" if host else ""
        super().__init__(f"Kubernetes API{where}: {operation}: {problem}")


class KubernetesConfigError(KubernetesError, InputError):
    """No usable connection settings: a missing or broken kubeconfig, or not in a cluster."""


def build_api_client(
    *,
    host: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
) -> client.ApiClient:
    """An ``ApiClient`` from, in this order: an explicit ``host`` URL, a ``kubeconfig`` file,
    or the in-cluster service account.

    ``host`` (``http://127.0.0.1:PORT``) talks to that server without credentials: it is how
    tests reach the kmock emulator, and how a local ``kubectl proxy`` is used. ``context``
    picks a kubeconfig context (default: the file's current one). Nothing global is touched
    (no ``load_kube_config()`` into the default ``Configuration``), so several clients can
    coexist. Raises :class:`KubernetesConfigError` with what to fix.
    """
    if host is not None:
        if not host.startswith(("http://", "https://")):
            raise KubernetesConfigError(
                "connect", f"host {host!r} is not an http:// or https:// URL"
            )
        return client.ApiClient(client.Configuration(host=host.rstrip("/")))
    if kubeconfig is not None:
        try:
            api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, persist_config=False
            )
        except (config.ConfigException, OSError, ValueError, TypeError) as exc:
            raise KubernetesConfigError(
                "load kubeconfig", f"{kubeconfig}: {_one_line(exc)}"
            ) from exc
        return api
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError) as exc:
        raise KubernetesConfigError(
            "load in-cluster config",
            f"not running in a pod with a service account ({_one_line(exc)}); "
            "give a kubeconfig path or an API server URL",
        ) from exc
    return client.ApiClient(configuration)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _status_of(body: str | None) -> Mapping[str, Any]:
    """The ``Status`` object an API server sends with an error, or {} if the body is not one."""
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, Mapping) and parsed.get("kind") == "Status" else {}


def _unreachable(exc: BaseException) -> str | None:
    """A short "why no answer came" for transport errors, None for anything else."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return _unreachable(exc.reason) or _one_line(exc.reason)
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        cause = exc.__cause__ or exc.__context__
        return f"cannot connect ({_one_line(cause) if cause else 'connection failed'})"
    if isinstance(exc, urllib3.exceptions.TimeoutError | socket.timeout | TimeoutError):
        return "timed out waiting for the API server"
    if isinstance(exc, urllib3.exceptions.ProtocolError | urllib3.exceptions.HTTPError):
        return f"connection broken ({_one_line(exc)})"
    if isinstance(exc, OSError):
        return f"cannot connect ({_one_line(exc)})"
    return None


def kubernetes_error(
    operation: str, exc: BaseException, *, host: str | None = None
) -> KubernetesError:
    """Translate an exception from the ``kubernetes``/``urllib3`` stack into a KubernetesError.

    The caller chains it: ``raise kubernetes_error("list pods in llm", e, host=...) from e``.
    """
    if isinstance(exc, KubernetesError):
        return exc
    if isinstance(exc, client.ApiException):
        body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
        status_obj = _status_of(body if isinstance(body, str) else None)
        message = status_obj.get("message") or exc.reason or "no reason given"
        reason = status_obj.get("reason") or (str(exc.reason) if exc.reason else None)
        status = exc.status if isinstance(exc.status, int) and exc.status > 0 else None
        text = " ".join(str(message).split())
        problem = f"HTTP {status} {text}" if status else text
        return KubernetesError(operation, problem, status=status, reason=reason, host=host)
    why = _unreachable(exc)
    if why is not None:
        return KubernetesError(operation, why, host=host)
    return KubernetesError(operation, f"{type(exc).__name__}: {_one_line(exc)}", host=host)


def read_json(response: Any, operation: str, *, host: str | None = None) -> dict[str, Any]:
    """The JSON object of a ``_preload_content=False`` response; KubernetesError if it is not."""
    try:
        parsed = json.loads(response.data)
    except (ValueError, TypeError, AttributeError) as exc:
        raise KubernetesError(operation, f"the answer is not JSON ({exc})", host=host) from exc
    finally:
        release = getattr(response, "release_conn", None)
        if callable(release):
            release()
    if not isinstance(parsed, dict):
        raise KubernetesError(
            operation, f"the answer is a JSON {type(parsed).__name__}, not an object", host=host
        )
    return parsed


def api_host(api_client: client.ApiClient) -> str | None:
    """The API server URL of ``api_client``, for error messages."""
    host = getattr(api_client.configuration, "host", None)
    return host if isinstance(host, str) else None


def call_json(
    operation: str,
    call: Callable[[], Any],
    *,
    host: str | None,
    absent: Collection[int] = (),
) -> dict[str, Any] | None:
    """Run one ``_preload_content=False`` API call and read its JSON object.

    None when the API answers a status in ``absent`` (404 for "not there", 409 for "already
    there"), so callers say what that status means to them; any other failure is a
    :class:`KubernetesError` naming ``operation``.
    """
    try:
        response = call()
    except client.ApiException as exc:
        if exc.status in absent:
            return None
        raise kubernetes_error(operation, exc, host=host) from exc
    except Exception as exc:
        raise kubernetes_error(operation, exc, host=host) from exc
    return read_json(response, operation, host=host)


def format_selector(labels: Mapping[str, str]) -> str:
    """``k1=v1,k2=v2`` (an equality label selector), sorted so the query string is stable."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def read_workload_call(
    apps: client.AppsV1Api,
    kind: str,
    namespace: str,
    name: str,
    timeout: tuple[float, float],
) -> Callable[[], Any]:
    """The raw (``_preload_content=False``) GET of workload ``namespace/name`` of ``kind``."""
    read: Callable[..., Any]
    if kind == "Deployment":
        read = apps.read_namespaced_deployment
    elif kind == "StatefulSet":
        read = apps.read_namespaced_stateful_set
    else:
        raise ValueError(f"unknown workload kind {kind!r}; known: {', '.join(WORKLOAD_KINDS)}")
    return lambda: read(name, namespace, _preload_content=False, _request_timeout=timeout)
