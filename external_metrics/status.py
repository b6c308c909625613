"""Kubernetes ``Status`` objects: how every error on the HTTPS port is reported.

client-go decodes a non-2xx body as ``metav1.Status`` and shows its ``message`` (the HPA puts it
in its ``FailedGetExternalMetric`` event; ``kubectl get --raw`` prints it), so every error here,
including those of the JSON API, is a Status with a reason client-go knows and a message that
says what was wrong. ``StatusError`` lets handlers raise a Status; the app's error middleware
turns it into the response.

No ``Retry-After`` header is ever set on a 503: client-go retries such responses inside one
call, which would only delay the HPA's own decision to hold its replica count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

JSON_CONTENT_TYPE = "application/json"

_REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    """The ``metav1.StatusReason`` client-go expects for an HTTP code ("" when none fits)."""
    return _REASONS.get(code, "")


def status_body(
    code: int, message: str, *, reason: str | None = None, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A ``v1 Status`` with ``status: Failure`` (every Status we send is a failure)."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason if reason is not None else reason_for(code),
        "code": code,
    }
    if details:
        body["details"] = dict(details)
    return body


def json_bytes(payload: object) -> bytes:
    """The compact JSON of every answer; non-finite floats must already be gone (no NaN)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def json_response(payload: object, *, status: int = 200) -> web.Response:
    """``payload`` as a compact JSON body."""
    return json_body_response(json_bytes(payload), status=status)


def json_body_response(body: bytes, *, status: int = 200) -> web.Response:
    """An already serialised JSON body (the response cache hands these out)."""
    # bytes, not text=: aiohttp would append "; charset=utf-8", which Kubernetes never sends
    return web.Response(body=body, status=status, content_type=JSON_CONTENT_TYPE)


class StatusError(Exception):
    """Raised by handlers and middlewares to answer with a Kubernetes Status."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason
        self.details = details
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        resp = json_response(
            status_body(self.code, self.message, reason=self.reason, details=self.details),
            status=self.code,
        )
        resp.headers.update(self.headers)
        return resp


def from_http_exception(exc: web.HTTPException) -> StatusError:
    """The Status for aiohttp's own errors (no route, wrong method, body too large...)."""
    code = exc.status
    if code == 404:
        message = "the server could not find the requested resource"
    elif code == 405:
        message = f"the server does not allow this method on the requested resource ({exc.reason})"
    else:
        message = exc.text or exc.reason
    headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
    return StatusError(code, message or "request failed", headers=headers)
