"""Async Credly API client (docs/CONTRACT.md "Badge provider calls"): one HTTP session and one rate limiter per organization.

Idempotent calls (GET, PUT revoke) retry by themselves on 5xx, 429 and network errors. The
POST that issues a badge makes exactly one attempt: whether to try again depends on a lookup
that only the issuer (``issuer.issue_once``) can do correctly.

Tokens come from ``token_for(org)`` at use time, so a worker reads ``api_key_env`` from its own
environment and a rotated token is picked up without a restart.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from yarl import URL

from .errors import (
    CredlyAuthError,
    CredlyError,
    CredlyNotFound,
    CredlyRateLimited,
    CredlyServerError,
    CredlyUnavailable,
    CredlyValidationError,
)
from .models import (
    Badge,
    BadgeTemplate,
    CredlyEvent,
    CredlyData,
    IssueRequest,
    CredlyOrganization,
    Page,
    badge_filter,
)
from .ratelimit import Limiter, SharedRateLimit
from .retry import credly_stop, is_transient, parse_retry_after, wait_credly

log = logging.getLogger(__name__)

TokenLookup = Callable[[str], str]
M = TypeVar("M", bound=BaseModel)

_MESSAGE_MAX = 300


def authorization_header(token: str) -> str:
    """Credly's Basic auth: base64 of the token itself (as Open edX sends it)."""
    return "Basic " + base64.b64encode(token.encode("utf-8")).decode("ascii")


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _credly_message(body: bytes, secrets: tuple[str, ...]) -> str:
    """Credly's explanation from an error body, scrubbed of anything secret and shortened."""
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        data = doc.get("data")
        inner = data if isinstance(data, dict) else doc
        parts: list[str] = []
        if isinstance(inner.get("message"), str):
            parts.append(inner["message"])
        for err in inner.get("errors") or doc.get("errors") or []:
            if isinstance(err, dict):
                msg = err.get("message") or "; ".join(map(str, err.get("messages") or []))
                attr = err.get("attribute") or err.get("field")
                parts.append(f"{attr}: {msg}" if attr else str(msg))
            else:
                parts.append(str(err))
        if parts:
            text = "; ".join(p for p in parts if p)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:_MESSAGE_MAX]


class JsonApiClient:
    """Transport shared by the badge providers (Credly, Accredible): one aiohttp session and one
    rate limiter per organization, tenacity retries of transient errors honouring Retry-After,
    and one error class per behaviour (``errors.py``). Subclasses name the service and its
    authorization header; their API methods sit on top of ``_call``."""

    service = "Credly"

    def __init__(
        self,
        base_url: str,
        token_for: TokenLookup,
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_max_s: float = 30.0,
        rate_per_s: float = 20.0,
        backoff_initial_s: float = 0.5,
        max_retry_after_s: float = 300.0,
        shared_limit: SharedRateLimit | None = None,
    ) -> None:
        self.base_url = str(base_url).rstrip("/") + "/"
        self._origin = URL(self.base_url).origin()
        self._token_for = token_for
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.rate_per_s = rate_per_s
        self._sessions: dict[str, tuple[str, aiohttp.ClientSession]] = {}
        self._limiters: dict[str, Limiter] = {}
        self._shared_limit = shared_limit
        self._retired: list[aiohttp.ClientSession] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, organizations={len(self._sessions)})"

    def authorization(self, token: str) -> str:
        """The ``Authorization`` header value for a token."""
        return authorization_header(token)

    async def __aenter__(self) -> "JsonApiClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        retired, self._retired = self._retired, []
        for session in [s for _, s in sessions.values()] + retired:
            await session.close()

    # --- retry policy (also used by the issuer) -----------------------------------------

    def retrying(self, *, max_attempts: int | None = None) -> AsyncRetrying:
        """The tenacity loop for transient errors; re-raises the last error at the end."""
        return AsyncRetrying(
            stop=credly_stop(max_attempts or self.max_attempts, self.max_retry_after_s),
            wait=wait_credly(self.backoff_initial_s, self.backoff_max_s),
            retry=retry_if_exception(is_transient),
            before_sleep=_log_retry,
            reraise=True,
        )

    # --- transport ------------------------------------------------------------------------

    async def _pages(
        self, org: str, url: str, params: dict[str, str], model: type[M], *, retry: bool = True
    ) -> AsyncIterator[Page[M]]:
        """Follow ``metadata.next_page_url`` (absolute, filter included) up to ``total_pages``."""
        next_url: str | None = url
        query: dict[str, str] | None = params
        seen: set[str] = set()
        while next_url is not None:
            doc = await self._call(org, "GET", next_url, params=query, retry=retry)
            page = _parse(Page[model], doc, org)  # type: ignore[valid-type]  # model: a type known at run time
            yield page
            seen.add(str(URL(next_url).update_query(query or {})))
            next_url, query = page.metadata.next_page_url, None
            if next_url is None or page.metadata.current_page >= page.metadata.total_pages:
                break
            self._check_same_origin(org, next_url)
            if next_url in seen:
                raise CredlyError(f"{self.service} pagination for organization {org} loops", org=org)

    def _check_same_origin(self, org: str, url: str) -> None:
        # The session sends the token with every request: never to another host.
        if URL(url).origin() != self._origin:
            raise CredlyError(
                f"{self.service} pagination for organization {org} points outside {self._origin}",
                org=org,
            )

    def _session(self, org: str) -> tuple[str, aiohttp.ClientSession]:
        try:
            token = self._token_for(org)
        except KeyError:
            raise CredlyAuthError(
                f"no {self.service} token configured for organization {org}", org=org
            ) from None
        except LookupError as exc:  # contract: token_for's own messages never hold a token
            raise CredlyAuthError(f"no {self.service} token: {exc}", org=org) from None
        except Exception as exc:  # noqa: BLE001 - unknown message: show only its type
            raise CredlyAuthError(
                f"no {self.service} token available for organization {org} ({type(exc).__name__})",
                org=org,
            ) from None
        if not token:
            raise CredlyAuthError(f"no {self.service} token configured for organization {org}", org=org)
        current = self._sessions.get(org)
        if current is not None and current[0] == token and not current[1].closed:
            return current
        if current is not None:
            self._retired.append(current[1])  # token rotated; closed with the client
        session = aiohttp.ClientSession(
            headers={"Authorization": self.authorization(token), "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            raise_for_status=False,
        )
        self._sessions[org] = (token, session)
        return token, session

    def _limiter(self, org: str) -> Limiter:
        limiter = self._limiters.get(org)
        if limiter is None:
            # Capacity 1: calls are spaced 1/rate apart instead of bursting.
            limiter = AsyncLimiter(1, 1.0 / self.rate_per_s)
            if self._shared_limit is not None:  # shared by the workers, this one as the fallback
                limiter = self._shared_limit.for_org(org, limiter)
            self._limiters[org] = limiter
        return limiter

    async def _call(
        self, org: str, method: str, url: str, *, params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None, retry: bool = True,
    ) -> dict[str, Any]:
        if not retry:
            return await self._once(org, method, url, params, body)
        async for attempt in self.retrying():
            with attempt:
                return await self._once(org, method, url, params, body)
        raise AssertionError("unreachable: tenacity re-raises")  # pragma: no cover

    async def _once(
        self, org: str, method: str, url: str, params: dict[str, str] | None,
        body: dict[str, Any] | None,
    ) -> dict[str, Any]:
        token, session = self._session(org)
        await self._limiter(org).acquire()
        path = URL(url).path
        started = time.perf_counter()
        failure: str | None = None
        try:
            async with session.request(method, url, params=params, json=body) as resp:
                status, headers, raw = resp.status, resp.headers, await resp.read()
        except TimeoutError:
            failure = f"no answer within {self.timeout_s:g}s"
        except aiohttp.ClientError as exc:
            failure = f"connection error ({type(exc).__name__})"
        if failure is not None:
            # Raised outside the except block: no chained aiohttp exception (it holds headers).
            log.info("%s %s %s: %s", self.service, method, path, failure)
            raise CredlyUnavailable(
                f"{self.service} {method} {path}: {failure}; outcome unknown",
                org=org,
            )
        log.debug(
            "%s %s %s -> %s (%.0f ms)", self.service, method, path, status,
            (time.perf_counter() - started) * 1000,
        )
        if 200 <= status < 300:
            try:
                doc = json_loads(raw)
            except ValueError:
                doc = None
            if not isinstance(doc, dict):
                raise CredlyUnavailable(
                    f"{self.service} {method} {path}: unreadable answer ({status}); outcome unknown",
                    org=org, status=status,
                )
            return doc
        secrets = (token, self.authorization(token))
        raise _error_for(org, method, path, status, raw, headers.get("Retry-After"), secrets,
                         self.service)


class CredlyClient(JsonApiClient):
    """The Credly API (docs/CONTRACT.md "Badge provider calls")."""

    # --- API ------------------------------------------------------------------------------

    def org_url(self, org: str, *parts: str) -> str:
        tail = "/".join(_segment(p) for p in parts)
        return f"{self.base_url}organizations/{_segment(org)}/{tail}"

    async def get_organization(self, org: str) -> CredlyOrganization:
        doc = await self._call(org, "GET", self.org_url(org))
        return _parse(CredlyData[CredlyOrganization], doc, org).data

    async def iter_badge_templates(self, org: str) -> AsyncIterator[BadgeTemplate]:
        """Every active template, page after page, following Credly's ``next_page_url``."""
        url = self.org_url(org, "badge_templates")
        async for page in self._pages(org, url, {"filter": "state::active"}, BadgeTemplate):
            for template in page.data:
                yield template

    async def list_badge_templates(self, org: str) -> list[BadgeTemplate]:
        return [t async for t in self.iter_badge_templates(org)]

    async def issue_badge(self, org: str, request: IssueRequest) -> Badge:
        """One POST, never retried here: see ``issuer.issue_once``."""
        doc = await self._call(
            org, "POST", self.org_url(org, "badges"), body=request.body(), retry=False
        )
        return _parse(CredlyData[Badge], doc, org, unknown_outcome=True).data

    async def get_badge(self, org: str, badge_id: str, *, retry: bool = True) -> Badge:
        doc = await self._call(org, "GET", self.org_url(org, "badges", badge_id), retry=retry)
        return _parse(CredlyData[Badge], doc, org).data

    async def revoke_badge(
        self, org: str, badge_id: str, reason: str, *, retry: bool = True
    ) -> Badge:
        url = self.org_url(org, "badges", badge_id, "revoke")
        doc = await self._call(org, "PUT", url, body={"reason": reason}, retry=retry)
        return _parse(CredlyData[Badge], doc, org).data

    async def find_badges(
        self, org: str, *, recipient_email: str, badge_template_id: str, retry: bool = True,
        issuer_earner_id: str | None = None,
    ) -> list[Badge]:
        """Badges of one template issued to one earner id, or else one email (every page), in
        any state.

        Results are re-checked here: an exactly-once decision must not rest on how loosely a
        server interprets a filter.
        """
        url = self.org_url(org, "badges")
        params = {
            "filter": badge_filter(
                recipient_email=recipient_email, badge_template_id=badge_template_id,
                issuer_earner_id=issuer_earner_id,
            )
        }
        found: list[Badge] = []
        async for page in self._pages(org, url, params, Badge, retry=retry):
            found.extend(page.data)
        email = recipient_email.casefold()
        return [
            b for b in found
            if b.template_id == badge_template_id
            and (b.issuer_earner_id == issuer_earner_id if issuer_earner_id is not None
                 else b.recipient_email is None or b.recipient_email.casefold() == email)
        ]

    async def get_event(self, org: str, event_id: str) -> CredlyEvent:
        doc = await self._call(org, "GET", self.org_url(org, "events", event_id))
        return _parse(CredlyData[CredlyEvent], doc, org).data


def json_loads(raw: bytes) -> Any:
    return json.loads(raw) if raw.strip() else {}


def _error_for(
    org: str, method: str, path: str, status: int, raw: bytes, retry_after_header: str | None,
    secrets: tuple[str, ...], service: str = "Credly",
) -> CredlyError:
    message = _credly_message(raw, secrets)
    where = f"{method} {path}"
    if status in (401, 403):
        return CredlyAuthError.rejected(org, status, service)
    if status == 404:
        return CredlyNotFound(
            f"{service} found nothing at {where} (404)", org=org, status=404
        )
    if status == 422:
        return CredlyValidationError(
            f"{service} refused {where} (422): {message}",
            org=org, credly_message=message,
        )
    retry_after = parse_retry_after(retry_after_header)
    if status == 429:
        hint = f", retry after {retry_after:g}s" if retry_after is not None else ""
        return CredlyRateLimited(
            f"{service} rate limit on {where} (429){hint}",
            org=org, retry_after=retry_after,
        )
    if status >= 500:
        return CredlyServerError(
            f"{service} server error on {where} ({status}): {message}",
            org=org, status=status, retry_after=retry_after,
        )
    return CredlyError(
        f"{service} answered {status} to {where}: {message}",
        org=org, status=status,
    )


def _parse(
    model: type[M], doc: dict[str, Any], org: str, *, unknown_outcome: bool = False,
    service: str = "Credly",
) -> M:
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        cls = CredlyUnavailable if unknown_outcome else CredlyError
        raise cls(
            f"{service} answer for organization {org} has an unexpected shape "
            f"({exc.error_count()} errors)" + ("; outcome unknown" if unknown_outcome else ""),
            org=org,
        ) from None


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("attempt %d failed (%s); retrying in %.2fs", state.attempt_number, exc, wait)

