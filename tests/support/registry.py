"""A small Confluent-compatible Schema Registry for tests, served by aiohttp on loopback.

It speaks the real REST protocol (the parts producers and consumers use: register, lookup,
schemas by id, subjects, versions, latest), so confluent-kafka's ``SchemaRegistryClient`` and
our ``badges.wire.registry.SchemaRegistry`` talk to it as to the real one. Compatibility
checking is not implemented (every registration is accepted if it parses).

    with StandInRegistry() as registry:
        SchemaRegistryClient({"url": registry.url})

It runs its own event loop in a daemon thread, so sync and async tests can both use it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import fastavro
from aiohttp import BasicAuth, web

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


@dataclass
class _Stored:
    id: int
    text: str
    schema_type: str
    references: list[Any]


@dataclass
class _State:
    by_key: dict[tuple[str, str, str], _Stored] = field(default_factory=dict)
    by_id: dict[int, _Stored] = field(default_factory=dict)
    subjects: dict[str, list[int]] = field(default_factory=dict)  # subject -> schema id per version


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type=CONTENT_TYPE)


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"error_code": code, "message": message}, status)


def _canonical(text: str, schema_type: str) -> str:
    if schema_type in ("AVRO", "JSON"):
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    return text


class StandInRegistry:
    def __init__(self, host: str = "127.0.0.1", credentials: tuple[str, str] | None = None) -> None:
        self._host = host
        # when set, every request needs HTTP basic auth with this (username, password), as
        # Confluent Cloud's registry does; otherwise 401
        self.credentials = credentials
        self._port: int | None = None
        self._state = _State()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request served
        self.fail_with: int | None = None  # answer every request with this HTTP status
        self.delay_s: float = 0.0  # wait before answering (to exercise client timeouts)

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("registry not started")
        return f"http://{self._host}:{self._port}"

    def start(self) -> StandInRegistry:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name="stand-in-schema-registry", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("stand-in schema registry did not start")
        if errors:
            raise errors[0]
        return self

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/", lambda _req: _json({}))  # type: ignore[arg-type, return-value]  # aiohttp also takes a plain function
        r.add_get("/schemas/types", lambda _req: _json(["AVRO", "JSON", "PROTOBUF"]))  # type: ignore[arg-type, return-value]  # aiohttp also takes a plain function
        r.add_get("/schemas/ids/{id}", self._get_by_id)
        r.add_get("/schemas/ids/{id}/schema", self._get_raw_by_id)
        r.add_get("/schemas/ids/{id}/subjects", self._subjects_of_id)
        r.add_get("/schemas/ids/{id}/versions", self._versions_of_id)
        r.add_get("/subjects", self._list_subjects)
        r.add_post("/subjects/{subject}", self._lookup)
        r.add_delete("/subjects/{subject}", self._delete_subject)
        r.add_get("/subjects/{subject}/versions", self._list_versions)
        r.add_post("/subjects/{subject}/versions", self._register)
        r.add_get("/subjects/{subject}/versions/{version}", self._get_version)
        r.add_get("/subjects/{subject}/versions/{version}/schema", self._get_version_raw)
        r.add_get("/config", lambda _req: _json({"compatibilityLevel": "BACKWARD"}))  # type: ignore[arg-type, return-value]  # aiohttp also takes a plain function
        r.add_get("/config/{subject}", lambda _req: _json({"compatibilityLevel": "BACKWARD"}))  # type: ignore[arg-type, return-value]  # aiohttp also takes a plain function
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> StandInRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- direct access for tests -------------------------------------------------------------------
    def register(self, subject: str, schema: dict[str, Any] | str, schema_type: str = "AVRO") -> int:
        text = schema if isinstance(schema, str) else json.dumps(schema, sort_keys=True)
        return self._store(subject, text, schema_type, []).id

    def subjects(self) -> list[str]:
        with self._lock:
            return sorted(self._state.subjects)

    # -- storage ------------------------------------------------------------------------------------
    def _store(self, subject: str, text: str, schema_type: str, references: list[Any]) -> _Stored:
        if schema_type == "AVRO":
            fastavro.parse_schema(json.loads(text))  # raises on an invalid schema
        key = (schema_type, _canonical(text, schema_type), json.dumps(references, sort_keys=True))
        with self._lock:
            st = self._state
            stored = st.by_key.get(key)
            if stored is None:
                stored = _Stored(len(st.by_id) + 1, text, schema_type, references)
                st.by_key[key] = stored
                st.by_id[stored.id] = stored
            versions = st.subjects.setdefault(subject, [])
            if stored.id not in versions:
                versions.append(stored.id)
            return stored

    def _version_body(self, subject: str, version: int, stored: _Stored) -> dict[str, Any]:
        body: dict[str, Any] = {"subject": subject, "version": version, "id": stored.id, "schema": stored.text}
        if stored.schema_type != "AVRO":
            body["schemaType"] = stored.schema_type
        if stored.references:
            body["references"] = stored.references
        return body

    # -- handlers ----------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        with self._lock:
            self.requests.append((request.method, request.path))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_with is not None:
            return _error(self.fail_with, self.fail_with * 100, "stand-in failure")
        if self.credentials is not None and not self._authorized(request.headers.get("Authorization")):
            return _error(401, 40101, "Unauthorized")
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _error(404, 404, "HTTP 404 Not Found")

    def _authorized(self, header: str | None) -> bool:
        if header is None or not header.startswith("Basic "):
            return False
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            return False
        return (auth.login, auth.password) == self.credentials

    def _stored_id(self, request: web.Request) -> _Stored | None:
        try:
            return self._state.by_id.get(int(request.match_info["id"]))
        except ValueError:
            return None

    async def _get_by_id(self, request: web.Request) -> web.Response:
        stored = self._stored_id(request)
        if stored is None:
            return _error(404, 40403, f"Schema {request.match_info['id']} not found")
        body: dict[str, Any] = {"schema": stored.text}
        if stored.schema_type != "AVRO":
            body["schemaType"] = stored.schema_type
        if stored.references:
            body["references"] = stored.references
        return _json(body)

    async def _get_raw_by_id(self, request: web.Request) -> web.Response:
        stored = self._stored_id(request)
        if stored is None:
            return _error(404, 40403, f"Schema {request.match_info['id']} not found")
        return web.Response(text=stored.text, content_type=CONTENT_TYPE)

    async def _subjects_of_id(self, request: web.Request) -> web.Response:
        stored = self._stored_id(request)
        if stored is None:
            return _error(404, 40403, f"Schema {request.match_info['id']} not found")
        return _json(sorted(s for s, ids in self._state.subjects.items() if stored.id in ids))

    async def _versions_of_id(self, request: web.Request) -> web.Response:
        stored = self._stored_id(request)
        if stored is None:
            return _error(404, 40403, f"Schema {request.match_info['id']} not found")
        return _json(
            [
                {"subject": s, "version": ids.index(stored.id) + 1}
                for s, ids in sorted(self._state.subjects.items())
                if stored.id in ids
            ]
        )

    async def _list_subjects(self, _request: web.Request) -> web.Response:
        return _json(self.subjects())

    async def _list_versions(self, request: web.Request) -> web.Response:
        ids = self._state.subjects.get(request.match_info["subject"])
        if ids is None:
            return _error(404, 40401, f"Subject '{request.match_info['subject']}' not found.")
        return _json(list(range(1, len(ids) + 1)))

    def _version_of(self, request: web.Request) -> tuple[web.Response | None, dict[str, Any] | None]:
        subject = request.match_info["subject"]
        ids = self._state.subjects.get(subject)
        if ids is None:
            return _error(404, 40401, f"Subject '{subject}' not found."), None
        raw = request.match_info["version"]
        try:
            version = len(ids) if raw in ("latest", "-1") else int(raw)
        except ValueError:
            return _error(422, 42202, f"The specified version '{raw}' is not a valid version id."), None
        if not 1 <= version <= len(ids):
            return _error(404, 40402, f"Version {version} not found."), None
        return None, self._version_body(subject, version, self._state.by_id[ids[version - 1]])

    async def _get_version(self, request: web.Request) -> web.Response:
        err, body = self._version_of(request)
        return err or _json(body)

    async def _get_version_raw(self, request: web.Request) -> web.Response:
        err, body = self._version_of(request)
        return err or web.Response(text=body["schema"], content_type=CONTENT_TYPE)  # type: ignore[index]  # body is set when err is None

    async def _read_schema(self, request: web.Request) -> tuple[str, str, list[Any]] | web.Response:
        try:
            payload = await request.json()
            text = payload["schema"]
            if not isinstance(text, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _error(422, 42201, "Invalid schema: the body needs a 'schema' string")
        return text, payload.get("schemaType") or "AVRO", payload.get("references") or []

    async def _register(self, request: web.Request) -> web.Response:
        parsed = await self._read_schema(request)
        if isinstance(parsed, web.Response):
            return parsed
        try:
            stored = self._store(request.match_info["subject"], *parsed)
        except Exception as exc:  # noqa: BLE001 - any invalid schema is a 422, as in the real registry
            return _error(422, 42201, f"Invalid schema: {exc}")
        return _json({"id": stored.id})

    async def _lookup(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        parsed = await self._read_schema(request)
        if isinstance(parsed, web.Response):
            return parsed
        text, schema_type, references = parsed
        ids = self._state.subjects.get(subject)
        if ids is None:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        try:
            key = (schema_type, _canonical(text, schema_type), json.dumps(references, sort_keys=True))
        except ValueError:
            return _error(422, 42201, "Invalid schema")
        stored = self._state.by_key.get(key)
        if stored is None or stored.id not in ids:
            return _error(404, 40403, "Schema not found")
        return _json(self._version_body(subject, ids.index(stored.id) + 1, stored))

    async def _delete_subject(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        with self._lock:
            ids = self._state.subjects.pop(subject, None)
        if ids is None:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        return _json(list(range(1, len(ids) + 1)))
