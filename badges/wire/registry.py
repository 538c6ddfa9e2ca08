"""Async client for a Confluent-compatible Schema Registry (REST protocol v1).

Only what the worker needs: fetch a writer schema by id (to resolve events produced with a
newer openedx-events) and register our own output schemas. Results are cached for the life of
the process: a schema id never changes meaning.

Credentials come as arguments (BADGES_SCHEMA_REGISTRY_USERNAME / _PASSWORD, any characters:
Confluent Cloud secrets hold ``/`` and ``+``), never in the URL, where they would have to be
percent-encoded and would show wherever the URL does. They are sent as HTTP basic auth and never
appear in reprs, logs or exception messages. A 401 or 403 is `RegistryAuthError`, a configuration
error: retrying cannot fix it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_ACCEPT = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5"
SCHEMA_NOT_FOUND = 40403


class RegistryError(Exception):
    """The registry gave no usable answer."""


class UnknownSchemaId(RegistryError):
    """The registry has no schema with that id (HTTP 404, error code 40403)."""

    def __init__(self, schema_id: int) -> None:
        super().__init__(f"the schema registry has no schema with id {schema_id}")
        self.schema_id = schema_id


class UnusableSchema(RegistryError):
    """The id exists but is not a plain Avro schema (another type, references, bad JSON)."""


class RegistryRejected(RegistryError):
    """A 4xx answer to a registration: invalid or incompatible schema."""


class RegistryUnavailable(RegistryError):
    """No answer now (connection, timeout, 5xx, refused credentials): try again later."""


class RegistryAuthError(RegistryError):
    """The registry refused our credentials (401/403): a configuration error, not an outage."""


class _Transient(RegistryUnavailable):
    """Retried: connection errors, timeouts and 5xx."""


def value_subject(topic: str, event_type: str) -> str:
    """TopicRecordNameStrategy subject of an event value.

    confluent-kafka's ``topic_record_subject_name_strategy`` is ``f"{topic}-{record_name}"`` with
    the fastavro-parsed fullname, here ``{namespace}.CloudEvent`` where namespace = event type.
    """
    return f"{topic}-{event_type}.CloudEvent"


def key_subject(topic: str, key_type: str = "string") -> str:
    """TopicRecordNameStrategy subject of an event key.

    edx-event-bus-kafka registers the key field's subschema (``{"name": "course_key", "type":
    "string"}``), whose parsed form has no name, so confluent-kafka falls back to the type name:
    ``{topic}-string``.
    """
    return f"{topic}-{key_type}"


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def schema_string(schema: Mapping[str, Any] | str) -> str:
    """The text to register: the same ``json.dumps(sort_keys=True)`` as AvroSignalSerializer.

    A string is taken as schema JSON, except a bare primitive name (``string``), which is
    quoted into the JSON schema ``"string"``.
    """
    if not isinstance(schema, str):
        return json.dumps(schema, sort_keys=True)
    if schema in _PRIMITIVES:
        return json.dumps(schema)
    return schema


class SchemaRegistry:
    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 5.0,
        attempts: int = 3,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._base = str(url).rstrip("/")
        self._auth = aiohttp.BasicAuth(username, password or "") if username is not None else None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._attempts = max(1, attempts)
        # Without a caller's session each request gets its own: requests are rare (once per
        # schema id or subject per process) and nothing stays bound to one event loop, so
        # sync callers may use asyncio.run() per batch.
        self._session = session
        self._by_id: dict[int, dict[str, Any]] = {}
        self._inflight: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._registered: dict[tuple[str, str], int] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> "SchemaRegistry | None":
        """The registry of BADGES_SCHEMA_REGISTRY_*, or None when none is configured."""
        if not settings.schema_registry_url:
            return None
        password = settings.schema_registry_password
        return cls(str(settings.schema_registry_url), username=settings.schema_registry_username,
                   password=password.get_secret_value() if password is not None else None)

    @property
    def url(self) -> str:
        return self._base

    def __repr__(self) -> str:
        return f"SchemaRegistry({self._base!r})"

    def cached(self, schema_id: int) -> dict[str, Any] | None:
        return self._by_id.get(schema_id)

    async def get_schema(self, schema_id: int) -> dict[str, Any]:
        """The Avro schema with this id (GET /schemas/ids/{id}); concurrent calls share one request.

        The returned dict is shared with the cache: do not mutate it.
        """
        found = self._by_id.get(schema_id)
        if found is not None:
            return found
        pending = self._inflight.get(schema_id)
        if pending is not None and pending.get_loop() is not asyncio.get_running_loop():
            pending = None  # left over from another event loop
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(schema_id))
            self._inflight[schema_id] = pending
            pending.add_done_callback(lambda _f: self._inflight.pop(schema_id, None))
        return await asyncio.shield(pending)

    async def _fetch(self, schema_id: int) -> dict[str, Any]:
        status, body = await self._request("GET", f"/schemas/ids/{int(schema_id)}")
        if status == 404 and isinstance(body, dict) and body.get("error_code") == SCHEMA_NOT_FOUND:
            raise UnknownSchemaId(schema_id)
        if status == 404:  # a wrong URL must not turn every event into "unknown schema"
            raise RegistryUnavailable(
                f"GET schema {schema_id}: HTTP 404 without error code {SCHEMA_NOT_FOUND}; "
                f"is {self._base} a schema registry?"
            )
        self._raise_for(status, body, f"GET schema {schema_id}", RegistryUnavailable)
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            raise UnusableSchema(f"schema {schema_id}: the registry's answer has no schema text")
        kind = body.get("schemaType", "AVRO")
        if kind != "AVRO":
            raise UnusableSchema(f"schema {schema_id} is a {kind} schema, not Avro")
        if body.get("references"):
            raise UnusableSchema(f"schema {schema_id} uses schema references, which are not supported")
        try:
            schema = json.loads(body["schema"])
        except ValueError as exc:
            raise UnusableSchema(f"schema {schema_id} is not valid JSON: {exc}") from None
        if not isinstance(schema, dict):
            raise UnusableSchema(f"schema {schema_id} is not an Avro record schema")
        self._by_id[schema_id] = schema
        return schema

    async def register(self, subject: str, schema: Mapping[str, Any] | str) -> int:
        """Register (or find) ``schema`` under ``subject``; returns its global id."""
        text = schema_string(schema)
        known = self._registered.get((subject, text))
        if known is not None:
            return known
        status, body = await self._request(
            "POST", f"/subjects/{quote(subject, safe='')}/versions", {"schema": text}
        )
        self._raise_for(status, body, f"register subject {subject!r}", RegistryRejected)
        if not isinstance(body, dict) or not isinstance(body.get("id"), int):
            raise RegistryUnavailable(f"register subject {subject!r}: answer without an id")
        schema_id: int = body["id"]
        self._registered[(subject, text)] = schema_id
        if not isinstance(schema, str):
            self._by_id.setdefault(schema_id, json.loads(text))
        return schema_id

    def _raise_for(self, status: int, body: Any, what: str, client_error: type[RegistryError]) -> None:
        if 200 <= status < 300:
            return
        message = ""
        if isinstance(body, dict):
            message = f" (error {body.get('error_code')}: {str(body.get('message', ''))[:200]})"
        if status in (401, 403):
            raise RegistryAuthError(
                f"schema registry at {self._base} refused our credentials ({status}) on {what}: "
                "check BADGES_SCHEMA_REGISTRY_USERNAME / BADGES_SCHEMA_REGISTRY_PASSWORD"
            )
        if status >= 500:
            raise _Transient(f"{what}: registry error {status}{message}")
        raise client_error(f"{what}: HTTP {status}{message}")

    async def _request(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                status, body = await self._once(method, path, payload)
                if status >= 500:
                    self._raise_for(status, body, f"{method} {path}", RegistryUnavailable)
                return status, body
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, path: str, payload: Any) -> tuple[int, Any]:
        headers = {"Accept": _ACCEPT}
        data = None
        if payload is not None:
            headers["Content-Type"] = CONTENT_TYPE
            data = json.dumps(payload)
        try:
            if self._session is not None:
                status, raw = await self._send(self._session, method, path, data, headers)
            else:
                async with aiohttp.ClientSession() as session:
                    status, raw = await self._send(session, method, path, data, headers)
        except asyncio.TimeoutError:
            raise _Transient(
                f"schema registry at {self._base} did not answer within {self._timeout.total} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise _Transient(
                f"schema registry at {self._base} unreachable: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        return status, body

    async def _send(
        self, session: aiohttp.ClientSession, method: str, path: str, data: str | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        async with session.request(
            method, self._base + path, data=data, headers=headers, auth=self._auth, timeout=self._timeout
        ) as resp:
            return resp.status, await resp.read()

    async def close(self) -> None:
        """Nothing to release (a caller's session stays the caller's); kept for symmetry."""

    async def __aenter__(self) -> SchemaRegistry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# The name the worker's modules import.
