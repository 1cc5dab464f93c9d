"""Commands that talk to a running phasewatch (``--url``, token from ``$PHASEWATCH_TOKEN``):
one POST with retries on what is worth retrying, and one way of saying it failed.

A refusal (a 4xx) or a service out of reach after the retries is exit 1 with one line on
stderr naming the URL and what it said (the fields of a 422); the caller reads the JSON of
an answer with the status it expects.
"""

from __future__ import annotations

import os
from typing import Any

import click
import httpx
from phasewatch_client.emit import DEFAULT_URL, MAX_RETRIES, TOKEN_ENV, URL_ENV
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from monitor.config import resolve_secret

__all__ = ["MAX_RETRIES", "URL_ENV", "env_url", "post"]


def env_url() -> str:
    """``$PHASEWATCH_URL``, else the default (``http://127.0.0.1:8080``)."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


def post(url: str, path: str, body: dict[str, Any], expect: int, *, retries: int,
         timeout_s: float) -> Any:
    """POST ``body`` to ``url`` + ``path``: the answer's JSON when its status is ``expect``;
    exit 1 (one line on stderr) when refused or out of reach. 5xx, 408, 429 and network
    errors are retried ``retries`` times with capped exponential backoff."""
    token = resolve_secret(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    target = url.rstrip("/") + path
    retrying = Retrying(stop=stop_after_attempt(retries + 1), reraise=True,
                        wait=wait_exponential(multiplier=0.5, max=10),
                        retry=retry_if_exception(_transient))
    try:
        with httpx.Client(timeout=timeout_s) as client:
            response = retrying(lambda: _post(client, target, body, headers))
    except httpx.HTTPError as exc:
        click.echo(f"error: {target}: unreachable: {exc}", err=True)
        raise click.exceptions.Exit(1) from None
    if response.status_code != expect:
        click.echo(f"error: {target}: refused ({response.status_code}): {_detail(response)}",
                   err=True)
        raise click.exceptions.Exit(1)
    return response.json()


def _post(client: httpx.Client, url: str, body: dict[str, Any],
          headers: dict[str, str]) -> httpx.Response:
    response = client.post(url, json=body, headers=headers)
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise httpx.HTTPStatusError(f"{response.status_code}", request=response.request,
                                    response=response)
    return response


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError | httpx.HTTPStatusError)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    details = body.get("details") or []
    parts = [f"{d.get('field')}: {d.get('message')}" for d in details if isinstance(d, dict)]
    return "; ".join(parts) or str(body.get("error", ""))[:300]
