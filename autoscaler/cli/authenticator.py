"""The API's authenticator, built the same way by ``serve`` and by each API process.

One function so that the in-process API and the API processes (``autoscaler/cli/api_workers.py``)
authenticate and authorize alike: the requestheader ConfigMap read once, the review cache sized
from :class:`~external_metrics.auth.AuthConfig`.
"""

from __future__ import annotations

import logging

from kubernetes import client

from autoscaler.clients.kube import reviews
from external_metrics.auth import AuthConfig, Authenticator

log = logging.getLogger(__name__)


def build_authenticator(api: client.ApiClient, config: AuthConfig) -> Authenticator | None:
    """The Authenticator for ``serve``: reads the requestheader ConfigMap once, at start-up.

    None when ``insecure_skip_auth`` is set (the
    caller then passes None to :func:`external_metrics.app.create_api_app`). Synchronous: call
    it before the event loop serves, or through ``asyncio.to_thread``. A rotated front-proxy CA
    is picked up on restart.
    """
    if config.insecure_skip_auth:
        log.warning("authentication and authorization are OFF (insecure_skip_auth)")
        return None
    settings = reviews.read_requestheader_settings(api, timeout_s=config.review_timeout_s)
    if settings is None:
        log.warning(
            "the cluster publishes no requestheader-client-ca-file: requests through the "
            "kube-aggregator cannot be authenticated, only bearer tokens"
        )
    reviewer = reviews.KubeReviewer(
        api, audiences=config.token_audiences, timeout_s=config.review_timeout_s
    )
    return Authenticator(
        reviewer, settings, cache_ttl_s=config.cache_ttl_s, cache_size=config.cache_size
    )


__all__ = ["build_authenticator"]
