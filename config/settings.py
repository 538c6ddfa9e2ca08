"""Runtime settings: environment variables with the ``BADGES_`` prefix (docs/CONTRACT.md "Interfaces").

One model for every process (worker, CLI, dev mode) so that a setting means the same thing
everywhere; a ``.env`` file in the working directory is read too.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from badges.kafka.connection import KafkaConnection


class SettingsError(Exception):
    """The environment holds an invalid setting; the message names each one."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BADGES_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- Kafka and the event bus -------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = Field(default="badges", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    event_bus_topic_prefix: str = ""
    input_topics: str = "learning-badges-lifecycle"
    schema_registry_url: AnyHttpUrl | None = None
    # docs/CONTRACT.md "Connections": one connection configuration for every Kafka client,
    # rendered for each client library by badges.kafka.connection.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    # How long a command waits for the broker before it names the cause and gives up.
    kafka_connect_timeout_s: float = Field(default=15.0, gt=0, le=300)
    schema_registry_username: str | None = None
    schema_registry_password: SecretStr | None = None
    partitions: int = Field(default=8, ge=1, le=1024, description="partitions of internal topics")
    topic_replication_factor: int = Field(default=1, ge=1, le=16)

    # Consumer-group timeouts: Faust's defaults suit Apache Kafka; the embedded broker wants
    # short ones (docs/KAFKA.md "Group timeouts"), which tests and `badges dev` set.
    broker_session_timeout_s: float = Field(default=60.0, gt=0)
    broker_heartbeat_interval_s: float = Field(default=3.0, gt=0)
    broker_rebalance_timeout_s: float = Field(default=60.0, gt=0)
    # The fetch wait dominates latency while consumers are idle (docs/KAFKA.md "Latency and the
    # fetch wait": a broker that holds each fetch for the whole wait adds it to every hop; there
    # are three from an event to its Credly call). 10 ms instead of 50 cut p50 event -> Credly at
    # 500 events/s to 77 ms (bench/RESULTS.md) for ~100 empty fetches/s per idle consumer; Apache
    # Kafka answers a fetch as soon as data arrives, so there the wait only sets how often an
    # idle consumer asks.
    fetch_max_wait_ms: int = Field(default=10, ge=0, le=10_000)
    ingest_batch_max: int = Field(default=2000, ge=1, le=100_000)
    # Static group membership (KIP-345): a stable, unique name per worker (the pod name of a
    # StatefulSet). A restarted worker takes its partitions back without a rebalance, and a
    # SIGTERM does not leave the group; unset: dynamic membership.
    group_instance_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
    # Faust waits this long after a rebalance before it recovers tables (its default is 3 s).
    recovery_delay_s: float = Field(default=3.0, ge=0)

    # --- Redis Streams (edx-event-bus-redis) ---------------------------------------------
    # redis://user:password@host:port/db, or rediss:// for TLS (verified against the system's
    # CAs, or BADGES_REDIS_SSL_CA_FILE).
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    redis_ssl_ca_file: Path | None = None
    redis_streams: str = Field(default="", description="event-bus topics read from Redis Streams")
    # Unset: "{hostname}:{web_port}", stable across restarts of the same worker, so a restarted
    # process finds its own pending entries at once; other consumers' are claimed after the idle time.
    redis_consumer_name: str | None = Field(default=None, min_length=1, max_length=200)
    # Entries pending this long under any consumer are taken over (the consumer is presumed dead).
    # Must exceed the time to forward and acknowledge one batch.
    redis_claim_idle_ms: int = Field(default=60_000, ge=100, le=86_400_000)
    redis_batch_size: int = Field(default=500, ge=1, le=10_000, description="COUNT per stream and read")
    redis_block_ms: int = Field(default=1000, ge=10, le=60_000, description="XREADGROUP BLOCK")

    # --- Credly --------------------------------------------------------------------------
    credly_api_url: AnyHttpUrl = AnyHttpUrl("https://sandbox-api.credly.com/v1/")
    credly_timeout_s: float = Field(default=10.0, gt=0, le=300)
    credly_max_attempts: int = Field(default=5, ge=1, le=50)
    credly_backoff_max_s: float = Field(default=30.0, gt=0)
    credly_rate_per_s: float = Field(default=20.0, gt=0, description="calls/s per organization")
    # Share that rate among all workers through Redis (BADGES_REDIS_URL); off: per worker.
    credly_shared_rate_limit: bool = False
    credly_concurrency: int = Field(default=32, ge=1, le=1024)
    revoke_reason: str = "Open edX internal user credential was revoked"
    # Accredible shares the timeout, retry, rate and concurrency settings above (per organization)
    accredible_api_url: AnyHttpUrl = AnyHttpUrl("https://sandbox.api.accredible.com/v1/")

    # --- Web view / admin API ------------------------------------------------------------
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    web_canonical_url: AnyHttpUrl | None = None
    admin_token: SecretStr | None = None
    # Read-only access to the pages and APIs that show learner data (docs/CONTRACT.md "Who may see what"); the admin token
    # grants it too. Neither set: learner data is served to nobody.
    viewer_token: SecretStr | None = None
    # Key of the browser session cookie. Unset: derived from the admin token (else the viewer
    # token), so every worker of a deployment that shares the tokens accepts the same cookie.
    session_secret: SecretStr | None = None
    session_max_age_s: int = Field(default=8 * 3600, ge=60, le=30 * 86400)
    # Failed sign-ins (bad bearer token, bad login) per client address within the window before
    # that address is refused with 429 until the window has passed.
    auth_max_failures: int = Field(default=10, ge=1, le=10_000)
    auth_failure_window_s: float = Field(default=300.0, gt=0, le=86_400)
    # "Sign in with Open edX" (staff only), on when all three are set (badges.web.oauth)
    lms_url: AnyHttpUrl | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None

    # --- Local state ---------------------------------------------------------------------
    data_dir: Path = Path("./data")
    store: Literal["rocksdb", "memory"] = "rocksdb"
    log_level: Literal["debug", "info", "warn", "error", "crit"] = "info"
    # json: one object per line, with learner_id / template / event_id fields (badges.logs)
    log_format: Literal["text", "json"] = "text"

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers:
            raise ValueError("needs at least one host:port")
        for server in servers:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port")
        return ",".join(servers)

    @field_validator("input_topics", "redis_streams")
    @classmethod
    def _topics(cls, value: str) -> str:
        return ",".join(t.strip() for t in value.split(",") if t.strip())

    @field_validator("schema_registry_url", mode="before")
    @classmethod
    def _registry_without_credentials(cls, value: object) -> object:
        # Credentials in a URL must be percent-encoded (Confluent Cloud secrets hold "/" and
        # "+") and would show wherever the URL does: they have settings of their own.
        if isinstance(value, str) and "@" in value:
            raise ValueError("put the credentials in BADGES_SCHEMA_REGISTRY_USERNAME / _PASSWORD, not in the URL")
        return value

    @model_validator(mode="after")
    def _kafka_connection(self) -> "Settings":
        from badges.kafka.connection import KafkaConfigError

        try:
            self.kafka  # noqa: B018 - built once, checked here
        except KafkaConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @cached_property
    def kafka(self) -> "KafkaConnection":
        """The one connection configuration every Kafka client is built from (docs/CONTRACT.md "Connections")."""
        from badges.kafka.connection import KafkaConnection

        return KafkaConnection.from_settings(self)

    # --- Derived names (one place for every topic name) ----------------------------------
    def bus_topic(self, topic: str) -> str:
        """The event-bus topic as edx-event-bus-kafka names it."""
        prefix = self.event_bus_topic_prefix
        return f"{prefix}-{topic}" if prefix else topic

    @cached_property
    def input_topic_names(self) -> list[str]:
        return [self.bus_topic(t) for t in self.input_topics.split(",") if t]

    @cached_property
    def redis_stream_names(self) -> list[str]:
        return [self.bus_topic(t) for t in self.redis_streams.split(",") if t]

    @property
    def lifecycle_topic(self) -> str:
        return self.bus_topic("learning-badges-lifecycle")

    @property
    def config_topic(self) -> str:
        return f"{self.app_id}-config"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.app_id}-dead-letters"

    @property
    def learner_events_topic(self) -> str:
        return f"{self.app_id}-learner-events"

    @property
    def decisions_topic(self) -> str:
        return f"{self.app_id}-badge-decisions"

    @property
    def replay_reports_topic(self) -> str:
        return f"{self.app_id}-replay-reports"

    def changelog_topic(self, table: str) -> str:
        """The changelog topic Faust keeps for a table (``tables.definitions``)."""
        return f"{self.app_id}-{table}-changelog"

    @property
    def ingest_group(self) -> str:
        return f"{self.app_id}-ingest"

    def redis_connection(self) -> tuple[str, dict[str, Any]]:
        """The Redis URL (it may hold a password) and the redis-py options for it.

        One place for both Redis clients (Redis Streams ingestion, the shared Credly rate limit):
        ``rediss://`` verifies the server against BADGES_REDIS_SSL_CA_FILE when it is set.
        """
        url = self.redis_url.get_secret_value()
        options: dict[str, Any] = {}
        if url.startswith("rediss://") and self.redis_ssl_ca_file is not None:
            options["ssl_ca_certs"] = str(self.redis_ssl_ca_file)
        return url, options

    @property
    def credly_base(self) -> str:
        url = str(self.credly_api_url)
        return url if url.endswith("/") else url + "/"

    @property
    def accredible_base(self) -> str:
        url = str(self.accredible_api_url)
        return url if url.endswith("/") else url + "/"

    @property
    def web_url(self) -> str:
        if self.web_canonical_url:
            return str(self.web_canonical_url).rstrip("/")
        host = "127.0.0.1" if self.web_host in ("0.0.0.0", "::") else self.web_host
        return f"http://{host}:{self.web_port}"


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning pydantic's error into one readable message per field."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]  # pydantic validates them as it does the environment
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            # errors of a combination of settings (the Kafka connection) name their settings
            lines.append(f"BADGES_{field.upper()}: {message}" if field else message)
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
