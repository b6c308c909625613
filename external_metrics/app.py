"""The HTTPS app: the External Metrics API and the JSON API on one port (6443 by default).

``serve`` wires it like this (everything passed in, nothing global)::

    auth = build_authenticator(api_client, AuthConfig(...))   # None with insecure_skip_auth
    ctx = server_ssl_context(cert, key, client_ca_pem=auth.client_ca_pem if auth else None)
    runner, port = await start_https(create_api_app(store, auth), ctx, host="0.0.0.0", port=6443)
    ...
    await runner.cleanup()

Middlewares, outermost first: every error becomes a Kubernetes ``Status`` (an unexpected
exception is logged and answered with a generic 500 that leaks nothing); then authentication
and authorization (:mod:`external_metrics.auth`, skipped only when ``auth`` is None); then
content negotiation (JSON is all we send; an ``Accept`` that rules it out gets 406). With auth
off, nothing runs between the first and the last, so they are one middleware: one coroutine
frame less on every request. The answers to hot reads are pre-serialised per store entry
(:mod:`external_metrics.response_cache`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from autoscaler.live.store import RecommendationStore
from external_metrics import json_api, metrics_api
from external_metrics.appkeys import INDEX, STORE
from external_metrics.auth import Authenticator, auth_middleware
from external_metrics.lookup import WorkloadIndex
from external_metrics.metrics_api import RESPONSES
from external_metrics.negotiation import accepts_json
from external_metrics.response_cache import ResponseCache
from external_metrics.status import StatusError, from_http_exception

log = logging.getLogger(__name__)

MAX_REQUEST_BODY = 64 * 1024
"""Every route is a GET; a large body is never legitimate."""


def create_api_app(
    store: RecommendationStore, auth: Authenticator | None, *, cache_responses: bool = True
) -> web.Application:
    """The aiohttp app serving ``store``; ``auth=None`` means no authn/authz (local runs only).

    ``cache_responses=False`` serialises every answer anew (tests compare it with the cache).
    """
    accept = AcceptMemo()
    middlewares: list[Middleware]
    if auth is not None:
        middlewares = [status_errors(), auth_middleware(auth), require_json_accept(accept)]
    else:
        log.warning("HTTPS API without authentication or authorization: for local runs only")
        # nothing would run between the two: one middleware frame per request instead of two
        middlewares = [status_errors(accept)]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_REQUEST_BODY)
    app[STORE] = store
    app[INDEX] = WorkloadIndex(entry.info for entry in store.entries())
    app[RESPONSES] = ResponseCache(enabled=cache_responses)
    app.add_routes(metrics_api.routes())
    app.add_routes(json_api.routes())
    return app


class AcceptMemo:
    """``accepts_json`` per raw ``Accept`` header: clients send the same few on every request.

    Bounded (emptied when ``max_size`` distinct headers are kept), so odd headers cost the
    parse, never memory.
    """

    def __init__(self, max_size: int = 256) -> None:
        self.max_size = max_size
        self._answers: dict[str | None, bool] = {}

    def __call__(self, accept: str | None) -> bool:
        answer = self._answers.get(accept)
        if answer is None:
            answer = accepts_json(accept)
            if len(self._answers) >= self.max_size:
                self._answers.clear()
            self._answers[accept] = answer
        return answer

    def __len__(self) -> int:
        return len(self._answers)


def status_errors(accept: AcceptMemo | None = None) -> Middleware:
    """The outermost middleware: every error becomes a Status. With ``accept`` it also does
    :func:`require_json_accept`'s check, for when no middleware runs between the two."""

    @web.middleware
    async def answer_errors_as_status(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if accept is not None and not accept(request.headers.get("Accept")):
                raise not_acceptable(request)
            return await handler(request)
        except StatusError as exc:
            return exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return from_http_exception(exc).response()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return StatusError(
                500, "Internal error: the request could not be served (see the server log)"
            ).response()

    return answer_errors_as_status


def require_json_accept(accept: AcceptMemo) -> Middleware:
    """406 for an ``Accept`` that rules JSON out (after authentication, when that is on)."""

    @web.middleware
    async def check_accept(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not accept(request.headers.get("Accept")):
            raise not_acceptable(request)
        return await handler(request)

    return check_accept


def not_acceptable(request: web.Request) -> StatusError:
    return StatusError(
        406,
        "only the following media types are accepted: application/json "
        f"(Accept was {request.headers.get('Accept', '')!r})",
    )


async def start_https(
    app: web.Application,
    ssl_context: ssl.SSLContext,
    *,
    host: str,
    port: int,
    access_log: logging.Logger | None = None,
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` over TLS; returns the runner (``await runner.cleanup()`` stops it) and the
    bound port (useful with ``port=0``). Access logging is off unless a logger is given: at the
    HPA's and aggregator's request rates it would only be noise."""
    runner = web.AppRunner(app, access_log=access_log)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    bound = port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound = int(address[1])
            break
    return runner, bound
