"""The one Kafka connection configuration, rendered for every client library (docs/CONTRACT.md "Connections").

Every Kafka client of every command (the Faust app, the ingestion consumer, the dead-letter
tail, the end-offset probe, the CLI's admin, producers and consumers, replay, control) is built
from a `KafkaConnection`, so that a secured cluster (Confluent Cloud SASL_SSL PLAIN, MSK SCRAM or
mutual TLS, any TLS broker) works everywhere at once and a new client cannot forget it
(``tests/unit/test_kafka_connection.py`` scans the package for constructors that bypass it).

It also turns the failures of a secured connection (wrong password, unknown CA, a plaintext
client against a TLS port) into one line naming the cause and the setting to look at, since
librdkafka reports them as a stream of log lines and then a bare timeout. Every command's first
Kafka call goes through `KafkaConnection.metadata` (the worker's is declaring its topics, before
Faust starts), so that is where a connection that cannot work is reported.
"""

from __future__ import annotations

import logging
import ssl
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

if TYPE_CHECKING:
    from badges.config.settings import Settings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class _Trail(logging.Handler):
    """The last failures librdkafka reported (log lines and error callbacks).

    librdkafka retries a failing connection quietly and its calls end in a bare "timed out" or
    "transport failure"; the cause (certificate, authentication, protocol) is only in what it
    logged meanwhile, so that is kept here to name it.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.recent: deque[str] = deque(maxlen=32)

    def emit(self, record: logging.LogRecord) -> None:
        self.recent.append(record.getMessage())

    def note(self, error: Any) -> None:
        """librdkafka's ``error_cb``."""
        self.recent.append(str(error))

    def drain(self) -> list[str]:
        """The failures seen since the last call, newest first."""
        seen = list(reversed(self.recent))
        self.recent.clear()
        return seen


# librdkafka's log lines go into the trail only: a failing connection logs the same line every
# few milliseconds, and the one line that matters is the cause `explain` names from them.
LIBRDKAFKA_LOG = logging.getLogger("badges.kafka.librdkafka")
LIBRDKAFKA_LOG.setLevel(logging.INFO)
LIBRDKAFKA_LOG.propagate = False
TRAIL = _Trail()
LIBRDKAFKA_LOG.addHandler(TRAIL)


class BrokerUnavailable(RuntimeError):
    """Kafka could not be used; the message is one line naming the cause."""


class KafkaConfigError(BrokerUnavailable):
    """The connection settings themselves are wrong (missing files, credentials without SASL)."""


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap: tuple[str, ...]
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = field(default=None, repr=False)
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    connect_timeout_s: float = 15.0

    @classmethod
    def from_settings(cls, settings: "Settings") -> "KafkaConnection":
        conn = cls(
            bootstrap=tuple(settings.kafka_bootstrap_servers.split(",")),
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
            ssl_ca_file=settings.kafka_ssl_ca_file,
            ssl_cert_file=settings.kafka_ssl_cert_file,
            ssl_key_file=settings.kafka_ssl_key_file,
            connect_timeout_s=settings.kafka_connect_timeout_s,
        )
        conn.check()
        conn.ssl_context  # noqa: B018 - a CA or key that cannot be loaded is a settings error too
        return conn

    # --- what the settings mean -----------------------------------------------------------------

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.bootstrap)

    def check(self) -> None:
        """Refuse combinations that would fail later with a less helpful message."""
        problems: list[str] = []
        if self.uses_sasl and (not self.sasl_username or self.sasl_password is None):
            problems.append(f"BADGES_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                            "BADGES_KAFKA_SASL_USERNAME and BADGES_KAFKA_SASL_PASSWORD")
        if not self.uses_sasl and (self.sasl_username or self.sasl_password is not None):
            problems.append("BADGES_KAFKA_SASL_USERNAME/_PASSWORD are set but BADGES_KAFKA_SECURITY_PROTOCOL="
                            f"{self.security_protocol} does not use SASL (SASL_SSL or SASL_PLAINTEXT?)")
        tls_files = {"BADGES_KAFKA_SSL_CA_FILE": self.ssl_ca_file, "BADGES_KAFKA_SSL_CERT_FILE": self.ssl_cert_file,
                     "BADGES_KAFKA_SSL_KEY_FILE": self.ssl_key_file}
        if not self.uses_tls and any(tls_files.values()):
            problems.append(f"BADGES_KAFKA_SSL_* files are set but BADGES_KAFKA_SECURITY_PROTOCOL="
                            f"{self.security_protocol} does not use TLS (SSL or SASL_SSL?)")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            problems.append("BADGES_KAFKA_SSL_CERT_FILE and BADGES_KAFKA_SSL_KEY_FILE go together")
        for name, path in tls_files.items():
            if path is not None and not path.is_file():
                problems.append(f"{name}: {path} is not a readable file")
        if problems:
            raise KafkaConfigError("; ".join(problems))

    def __repr__(self) -> str:  # shows that a password is set, never what it is
        secret = "**********" if self.sasl_password is not None else None
        return (f"KafkaConnection(bootstrap={self.bootstrap_servers!r}, security_protocol={self.security_protocol!r}, "
                f"sasl_mechanism={self.sasl_mechanism!r}, sasl_username={self.sasl_username!r}, "
                f"sasl_password={secret!r}, ssl_ca_file={self.ssl_ca_file}, ssl_cert_file={self.ssl_cert_file})")

    # --- renderings -----------------------------------------------------------------------------

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the Python clients (Faust, aiokafka): built once, shared."""
        if not self.uses_tls:
            return None
        try:
            context = ssl.create_default_context(cafile=str(self.ssl_ca_file) if self.ssl_ca_file else None)
            if self.ssl_cert_file and self.ssl_key_file:
                context.load_cert_chain(str(self.ssl_cert_file), str(self.ssl_key_file))
        except (ssl.SSLError, OSError) as exc:
            raise KafkaConfigError(f"cannot load the Kafka TLS files (BADGES_KAFKA_SSL_*): {exc}") from None
        return context

    def _password(self) -> str | None:
        return self.sasl_password.get_secret_value() if self.sasl_password is not None else None

    def faust_kwargs(self) -> dict[str, Any]:
        """Faust app settings: the broker URL and its credentials (its clients derive theirs)."""
        import faust

        kwargs: dict[str, Any] = {"broker": ";".join(f"kafka://{s}" for s in self.bootstrap)}
        if self.uses_sasl:
            kwargs["broker_credentials"] = faust.SASLCredentials(
                username=self.sasl_username, password=self._password(),
                ssl_context=self.ssl_context, mechanism=self.sasl_mechanism,
            )
        elif self.uses_tls:
            kwargs["broker_credentials"] = faust.SSLCredentials(self.ssl_context)
        return kwargs

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Constructor arguments of AIOKafkaConsumer / AIOKafkaProducer / AIOKafkaAdminClient."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap),
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            kwargs["ssl_context"] = self.ssl_context
        if self.uses_sasl:
            kwargs.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                          sasl_plain_password=self._password())
        return kwargs

    def confluent_config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka configuration of Consumer / Producer / AdminClient, plus ``extra``."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
            "logger": LIBRDKAFKA_LOG,
            "error_cb": TRAIL.note,
        }
        if self.uses_tls:
            if self.ssl_ca_file:
                config["ssl.ca.location"] = str(self.ssl_ca_file)
            if self.ssl_cert_file and self.ssl_key_file:
                config["ssl.certificate.location"] = str(self.ssl_cert_file)
                config["ssl.key.location"] = str(self.ssl_key_file)
        if self.uses_sasl:
            config.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username,
                           "sasl.password": self._password()})
        config.update(extra)
        return config

    # --- failures, in one line ------------------------------------------------------------------

    def explain(self, *details: str) -> str:
        """One line naming the cause of a connection failure and the setting to look at.

        ``details`` are error texts, most relevant first; librdkafka's recent failures follow.
        The first that names a specific cause wins.
        """
        texts = [*details, *TRAIL.drain()]
        causes = [diagnose(t, self.security_protocol) for t in texts if t]
        cause = next((c for c in causes if not c.startswith(_VAGUE)), None)
        cause = cause or next((c for c in causes if c.startswith(_UNREACHABLE)), None)
        if cause is None:
            cause = (f"no answer within {self.connect_timeout_s:g} s: is the address right, and does the broker "
                     f"expect BADGES_KAFKA_SECURITY_PROTOCOL={self.security_protocol} on that port?")
        return f"Kafka at {self.bootstrap_servers}: {cause}"

    def metadata(self, client: Any, topic: str | None = None) -> Any:
        """``list_topics`` of a confluent-kafka client, within the connect timeout.

        It is the first call every command makes, so it is where a secured connection that
        cannot work is reported: as `BrokerUnavailable` with one line naming the cause.
        """
        from confluent_kafka import KafkaException

        try:
            return client.list_topics(topic, timeout=self.connect_timeout_s)
        except KafkaException as exc:
            client.poll(0)  # serves the error callbacks that explain it
            raise BrokerUnavailable(self.explain(str(exc))) from None


_UNREACHABLE = "nothing answers at that address"
_VAGUE = ("no usable answer", _UNREACHABLE)

# (any of these substrings of an error text, lower case) -> the cause; the first match wins.
_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("certificate verify failed", "certificate_verify_failed", "unable to get local issuer", "self-signed certificate",
      "self signed certificate"),
     "TLS certificate verify failed: the broker's certificate is not signed by a trusted CA (BADGES_KAFKA_SSL_CA_FILE)"),
    (("hostname mismatch", "ip address mismatch", "doesn't match"),
     "the broker's TLS certificate does not name this host (BADGES_KAFKA_BOOTSTRAP_SERVERS)"),
    (("tlsv13 alert certificate required", "alert certificate required", "alert bad certificate", "peer did not return a certificate"),
     "the broker requires a client certificate (BADGES_KAFKA_SSL_CERT_FILE / BADGES_KAFKA_SSL_KEY_FILE)"),
    (("authentication failed", "authenticationfailed", "invalid username or password", "sasl authentication error",
      "saslauthenticate", "_authentication", "unsupported sasl mechanism", "unsupportedsaslmechanism"),
     "SASL authentication failed: wrong username, password or mechanism "
     "(BADGES_KAFKA_SASL_USERNAME / BADGES_KAFKA_SASL_PASSWORD / BADGES_KAFKA_SASL_MECHANISM)"),
    (("wrong version number", "packet length too long", "record layer failure"),
     "TLS handshake failed: the broker does not speak TLS on this port (BADGES_KAFKA_SECURITY_PROTOCOL={protocol})"),
    (("ssl handshake failed", "sslerror", "ssl:"), "TLS handshake failed ({detail})"),
    (("incorrect security.protocol", "disconnected while requesting apiversion", "in state apiversion_query"),
     "the broker closed the connection during the handshake: it probably expects TLS or SASL "
     "(BADGES_KAFKA_SECURITY_PROTOCOL={protocol})"),
    (("connection refused", "connect to ipv4", "name or service not known", "resolve"), _UNREACHABLE + " ({detail})"),
)


def diagnose(detail: str, protocol: str) -> str:
    """The cause behind one error text of a client library (librdkafka, aiokafka, ssl)."""
    text = detail.lower()
    for needles, cause in _CAUSES:
        if any(n in text for n in needles):
            return cause.format(protocol=protocol, detail=_short(detail))
    return f"no usable answer ({_short(detail)})"


def _short(detail: str, limit: int = 200) -> str:
    line = " ".join(detail.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
