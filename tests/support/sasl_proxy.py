"""A test-only SASL front for the embedded broker: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.

tansu cannot serve an end-to-end SASL test (BROKER.md: SCRAM only, and no users on a broker
that already requires authentication), so this proxy does what a SASL listener of Apache Kafka
does before the first ordinary request: it relays ApiVersions to tansu (which lists SaslHandshake
and SaslAuthenticate), answers SaslHandshake (v0/v1) and SaslAuthenticate (v0-v2) itself,
checking PLAIN credentials or running the server side of SCRAM (RFC 5802 / RFC 7677), and
then relays bytes both ways. Any other request before authentication closes the connection, as
a real SASL listener does; a failed authentication answers SASL_AUTHENTICATION_FAILED (58).
tansu must advertise the proxy's address (``EmbeddedBroker(advertised=...)``); put socat's TLS
terminator in front of the proxy for SASL_SSL.

    proxy = SaslProxy(target=broker.bootstrap, users={"alice": "pw"}).start()
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import struct
import threading
from dataclasses import dataclass, field

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 33, 58
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_ITERATIONS = 4096


class AuthFailed(Exception):
    pass


# --- Kafka wire primitives ----------------------------------------------------------------------

def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


@dataclass(frozen=True)
class Request:
    api_key: int
    api_version: int
    correlation_id: int
    body: bytes  # after the request header

    @classmethod
    def parse(cls, frame: bytes, flexible: bool) -> "Request":
        api_key, api_version, correlation_id, client_len = struct.unpack(">hhih", frame[:10])
        pos = 10 + max(client_len, 0)
        if flexible:  # request header v2: tagged fields after the client id
            count, pos = _read_uvarint(frame, pos)
            for _ in range(count):
                _tag, pos = _read_uvarint(frame, pos)
                size, pos = _read_uvarint(frame, pos)
                pos += size
        return cls(api_key, api_version, correlation_id, frame[pos:])


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def handshake_response(correlation_id: int, mechanism: str, allowed: tuple[str, ...]) -> bytes:
    error = 0 if mechanism in allowed else UNSUPPORTED_SASL_MECHANISM
    body = struct.pack(">ihi", correlation_id, error, len(allowed))
    for m in allowed:
        body += struct.pack(">h", len(m)) + m.encode()
    return _frame(body)


def authenticate_response(req: Request, token: bytes, error: str | None) -> bytes:
    code = SASL_AUTHENTICATION_FAILED if error else 0
    if req.api_version >= 2:  # flexible: response header v1, compact strings and bytes
        message = _uvarint(0) if error is None else _uvarint(len(error.encode()) + 1) + error.encode()
        body = (struct.pack(">i", req.correlation_id) + _uvarint(0) + struct.pack(">h", code) + message
                + _uvarint(len(token) + 1) + token + struct.pack(">q", 0) + _uvarint(0))
        return _frame(body)
    message = struct.pack(">h", -1) if error is None else struct.pack(">h", len(error.encode())) + error.encode()
    body = struct.pack(">ih", req.correlation_id, code) + message + struct.pack(">i", len(token)) + token
    if req.api_version >= 1:
        body += struct.pack(">q", 0)
    return _frame(body)


def auth_bytes(req: Request) -> bytes:
    if req.api_version >= 2:
        size, pos = _read_uvarint(req.body, 0)
        return req.body[pos:pos + size - 1]
    (size,) = struct.unpack(">i", req.body[:4])
    return req.body[4:4 + size]


def handshake_mechanism(req: Request) -> str:
    (size,) = struct.unpack(">h", req.body[:2])
    return req.body[2:2 + size].decode()


# --- SASL mechanisms, server side ---------------------------------------------------------------

class Plain:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.done = False
        self.user: str | None = None

    def step(self, message: bytes) -> bytes:
        parts = message.split(b"\0")
        if len(parts) != 3:
            raise AuthFailed("malformed PLAIN message")
        user, password = parts[1].decode(), parts[2].decode()
        if self.users.get(user) != password:
            raise AuthFailed(f"Authentication failed: Invalid username or password for {user}")
        self.done, self.user = True, user
        return b""


class Scram:
    """The server side of SCRAM-SHA-256 / -512 (RFC 5802), for users with plain passwords."""

    def __init__(self, users: dict[str, str], mechanism: str) -> None:
        self.users = users
        self.hash = "sha256" if mechanism == "SCRAM-SHA-256" else "sha512"
        self.done = False
        self.user: str | None = None
        self._first_bare = self._server_first = self._nonce = ""
        self._salted = b""

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash).digest()

    def step(self, message: bytes) -> bytes:
        text = message.decode()
        if not self._nonce:
            return self._first(text)
        return self._final(text)

    def _first(self, text: str) -> bytes:
        _gs2, _authz, bare = text.split(",", 2)
        attrs = dict(a.split("=", 1) for a in bare.split(","))
        user = attrs["n"].replace("=2C", ",").replace("=3D", "=")
        if user not in self.users:
            raise AuthFailed(f"Authentication failed: unknown user {user}")
        salt = hashlib.sha256(user.encode()).digest()[:16]
        self.user, self._first_bare = user, bare
        self._nonce = attrs["r"] + base64.b64encode(os.urandom(18)).decode()
        self._salted = hashlib.pbkdf2_hmac(self.hash, self.users[user].encode(), salt, SCRAM_ITERATIONS)
        self._server_first = f"r={self._nonce},s={base64.b64encode(salt).decode()},i={SCRAM_ITERATIONS}"
        return self._server_first.encode()

    def _final(self, text: str) -> bytes:
        without_proof, _, proof = text.rpartition(",p=")
        attrs = dict(a.split("=", 1) for a in without_proof.split(","))
        if attrs.get("r") != self._nonce:
            raise AuthFailed("Authentication failed: nonce mismatch")
        auth_message = f"{self._first_bare},{self._server_first},{without_proof}".encode()
        client_key_claimed = bytes(a ^ b for a, b in zip(
            base64.b64decode(proof), self._hmac(self._stored_key(), auth_message)))
        if hashlib.new(self.hash, client_key_claimed).digest() != self._stored_key():
            raise AuthFailed("Authentication failed during authentication due to invalid credentials "
                             f"with SASL mechanism SCRAM-SHA-{self.hash[3:]}")
        server_signature = self._hmac(self._hmac(self._salted, b"Server Key"), auth_message)
        self.done = True
        return f"v={base64.b64encode(server_signature).decode()}".encode()

    def _stored_key(self) -> bytes:
        return hashlib.new(self.hash, self._hmac(self._salted, b"Client Key")).digest()


def _mechanism(name: str, users: dict[str, str]) -> Plain | Scram:
    return Plain(users) if name == "PLAIN" else Scram(users, name)


# --- the proxy ----------------------------------------------------------------------------------

@dataclass
class SaslProxy:
    target: str  # tansu's plaintext host:port
    users: dict[str, str]
    mechanisms: tuple[str, ...] = MECHANISMS
    host: str = "127.0.0.1"
    port: int = 0
    authenticated: list[tuple[str, str]] = field(default_factory=list)  # (user, mechanism)
    failures: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False)
    _server: asyncio.AbstractServer | None = field(default=None, init=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "SaslProxy":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(asyncio.start_server(self._client, self.host, self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=run, name="sasl-proxy", daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("SASL proxy did not start")
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None:
            loop.call_soon_threadsafe(server.close)
            loop.call_soon_threadsafe(loop.stop)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        try:
            if await self._authenticate(reader, writer, up_reader, up_writer):
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, struct.error, ValueError, UnicodeDecodeError):
            pass
        finally:
            for w in (writer, up_writer):
                w.close()

    async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> bool:
        mechanism: Plain | Scram | None = None
        name = ""
        raw_tokens = False  # SaslHandshake v0: the tokens follow without Kafka framing
        while True:
            frame = await _read_frame(reader)
            if raw_tokens and mechanism is not None:
                try:
                    writer.write(_frame(mechanism.step(frame)))
                except AuthFailed as exc:
                    self.failures.append(str(exc))
                    return False
                await writer.drain()
                if mechanism.done:
                    self.authenticated.append((mechanism.user or "", name))
                    return True
                continue
            api_key, api_version = struct.unpack(">hh", frame[:4])
            flexible = api_key == SASL_AUTHENTICATE and api_version >= 2
            req = Request.parse(frame, flexible)
            if api_key == API_VERSIONS:  # relayed: tansu lists SaslHandshake and SaslAuthenticate
                up_writer.write(_frame(frame))
                await up_writer.drain()
                writer.write(_frame(await _read_frame(up_reader)))
            elif api_key == SASL_HANDSHAKE:
                name = handshake_mechanism(req)
                writer.write(handshake_response(req.correlation_id, name, self.mechanisms))
                if name not in self.mechanisms:
                    await writer.drain()
                    return False
                mechanism = _mechanism(name, self.users)
                raw_tokens = api_version == 0
            elif api_key == SASL_AUTHENTICATE and mechanism is not None:
                try:
                    token, error = mechanism.step(auth_bytes(req)), None
                except AuthFailed as exc:
                    token, error = b"", str(exc)
                    self.failures.append(error)
                writer.write(authenticate_response(req, token, error))
                await writer.drain()
                if error is not None:
                    return False
                if mechanism.done:
                    self.authenticated.append((mechanism.user or "", name))
                    return True
            else:  # an ordinary request before authentication: a SASL listener hangs up
                return False
            await writer.drain()


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return await reader.readexactly(size)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
