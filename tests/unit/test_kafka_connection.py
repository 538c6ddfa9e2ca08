"""The one Kafka connection configuration (SPEC §9): its rendering for each client library, its
checks, its one-line diagnoses, secrets, and that no client in the package bypasses it."""

from __future__ import annotations

import ast
import logging
import ssl
from pathlib import Path
from typing import Any, Iterator

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Producer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from badges.config.settings import Settings, SettingsError, load_settings
from badges.kafka.connection import KafkaConnection, diagnose
from tests.support.tls import Pki, make_pki
from tests.unit.test_settings import clean_env  # noqa: F401 - autouse: no BADGES_* from outside

SECRET = "cc/SeCrEt+with:odd@chars%2F=="
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def settings(**kw: Any) -> Settings:
    return load_settings(kafka_bootstrap_servers="b1:9093,b2:9093", **kw)


def sasl(protocol: str = "SASL_SSL", mechanism: str = "PLAIN", **kw: Any) -> Settings:
    return settings(kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism,
                    kafka_sasl_username="API_KEY", kafka_sasl_password=SECRET, **kw)


# --- mapping, per client library -----------------------------------------------------------------

def test_plaintext_is_the_default_everywhere() -> None:
    conn = settings().kafka
    assert conn.aiokafka_kwargs() == {"bootstrap_servers": ["b1:9093", "b2:9093"], "security_protocol": "PLAINTEXT"}
    config = conn.confluent_config()
    assert (config["bootstrap.servers"], config["security.protocol"]) == ("b1:9093,b2:9093", "plaintext")
    assert not any(k.startswith(("sasl.", "ssl.")) for k in config)
    assert conn.faust_kwargs() == {"broker": "kafka://b1:9093;kafka://b2:9093"}


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_mapping_for_aiokafka_confluent_and_faust(protocol: str, mechanism: str) -> None:
    conn = sasl(protocol, mechanism).kafka
    tls = protocol == "SASL_SSL"

    aio = conn.aiokafka_kwargs()
    assert (aio["security_protocol"], aio["sasl_mechanism"]) == (protocol, mechanism)
    assert (aio["sasl_plain_username"], aio["sasl_plain_password"]) == ("API_KEY", SECRET)
    assert isinstance(aio.get("ssl_context"), ssl.SSLContext) == tls

    config = conn.confluent_config()
    assert config["security.protocol"] == protocol.lower()
    assert (config["sasl.mechanism"], config["sasl.username"], config["sasl.password"]) == (mechanism, "API_KEY", SECRET)

    creds = conn.faust_kwargs()["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    # what Faust hands its own consumer, producer and admin client is what ours get
    faust_auth = credentials_to_aiokafka_auth(creds)
    assert faust_auth["security_protocol"] == protocol
    assert faust_auth["sasl_mechanism"] == mechanism
    assert (faust_auth["sasl_plain_username"], faust_auth["sasl_plain_password"]) == ("API_KEY", SECRET)
    assert faust_auth["ssl_context"] is aio.get("ssl_context")


def test_tls_with_ca_and_client_certificate(pki: Pki) -> None:
    conn = settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=pki.ca,
                    kafka_ssl_cert_file=pki.client_cert, kafka_ssl_key_file=pki.client_key).kafka
    config = conn.confluent_config(acks="all")
    assert config["security.protocol"] == "ssl"
    assert config["ssl.ca.location"] == str(pki.ca)
    assert (config["ssl.certificate.location"], config["ssl.key.location"]) == (str(pki.client_cert), str(pki.client_key))
    assert config["acks"] == "all"
    assert "sasl.mechanism" not in config

    aio = conn.aiokafka_kwargs()
    context = aio["ssl_context"]
    assert aio["security_protocol"] == "SSL" and context.verify_mode == ssl.CERT_REQUIRED
    assert any("badges test CA" in str(c.get("subject")) for c in context.get_ca_certs())
    assert conn.ssl_context is context  # built once, shared by every Python client

    creds = conn.faust_kwargs()["broker_credentials"]
    assert isinstance(creds, faust.SSLCredentials) and creds.context is context
    assert credentials_to_aiokafka_auth(creds) == {"security_protocol": "SSL", "ssl_context": context}


async def test_the_rendered_configurations_are_accepted_by_the_clients(pki: Pki) -> None:
    """librdkafka and aiokafka validate their settings at construction: no unknown key, no bad value."""
    for s in (settings(), sasl("SASL_SSL", "SCRAM-SHA-512", kafka_ssl_ca_file=pki.ca), sasl("SASL_PLAINTEXT", "PLAIN"),
              settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=pki.ca,
                       kafka_ssl_cert_file=pki.client_cert, kafka_ssl_key_file=pki.client_key)):
        Producer(s.kafka.confluent_config())
        Consumer(s.kafka.confluent_config(**{"group.id": "g"})).close()
        AIOKafkaConsumer(**s.kafka.aiokafka_kwargs())
        AIOKafkaProducer(**s.kafka.aiokafka_kwargs())


# --- checks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, needle", [
    ({"kafka_security_protocol": "SASL_SSL"}, "needs BADGES_KAFKA_SASL_USERNAME and BADGES_KAFKA_SASL_PASSWORD"),
    ({"kafka_sasl_username": "u", "kafka_sasl_password": "p"}, "does not use SASL"),
    ({"kafka_ssl_ca_file": "/etc/hostname"}, "does not use TLS"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": "/nonexistent/ca.pem"},
     "BADGES_KAFKA_SSL_CA_FILE: /nonexistent/ca.pem is not a readable file"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/etc/hostname"}, "go together"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI"}, "BADGES_KAFKA_SASL_MECHANISM"),
])
def test_contradicting_settings_are_refused_with_their_names(kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings(**kw)
    assert needle in str(info.value)


def test_an_unusable_ca_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(SettingsError) as info:
        settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=bad)
    assert "cannot load the Kafka TLS files (BADGES_KAFKA_SSL_*)" in str(info.value)


# --- secrets --------------------------------------------------------------------------------------

def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("BADGES_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BADGES_KAFKA_SASL_USERNAME", "API_KEY")
    monkeypatch.setenv("BADGES_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("BADGES_SCHEMA_REGISTRY_URL", "https://psrc-123.confluent.cloud")
    monkeypatch.setenv("BADGES_SCHEMA_REGISTRY_USERNAME", "SR_KEY")
    monkeypatch.setenv("BADGES_SCHEMA_REGISTRY_PASSWORD", SECRET + "-sr")
    monkeypatch.setenv("BADGES_REDIS_URL", f"rediss://default:{SECRET}-redis@redis.example:6380/0")
    s = load_settings()
    shown = [repr(s), str(s), str(s.model_dump()), repr(s.kafka), str(s.kafka),
             repr(s.kafka.faust_kwargs()["broker_credentials"])]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("settings %s connection %r", s, s.kafka)
    shown.append(caplog.text)
    for text in shown:
        assert SECRET not in text
    assert s.redis_connection()[0].endswith("@redis.example:6380/0")


def test_credentials_in_the_registry_url_are_refused() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(schema_registry_url=f"https://key:{SECRET}@psrc.example")
    assert "BADGES_SCHEMA_REGISTRY_USERNAME" in str(info.value) and SECRET not in str(info.value)


# --- one line per failure -------------------------------------------------------------------------

# Texts measured from librdkafka 2.x and aiokafka 0.14 against socat + tansu (tests/support/tls.py).
@pytest.mark.parametrize("text, cause", [
    ("ssl://127.0.0.1:33275/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: "
     "broker certificate could not be verified", "TLS certificate verify failed"),
    ('Unable connect to "127.0.0.1:33275": [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get '
     "local issuer certificate (_ssl.c:1006)", "TLS certificate verify failed"),
    ("127.0.0.1:33275/bootstrap: Disconnected: connection reset by peer (after 2ms in state APIVERSION_QUERY)",
     "it probably expects TLS or SASL"),
    ('KafkaError{code=_AUTHENTICATION,val=-169,str="sasl_plaintext://127.0.0.1:1/bootstrap: SASL authentication '
     'error: Authentication failed during authentication due to invalid credentials with SASL mechanism PLAIN"}',
     "SASL authentication failed"),
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", "does not speak TLS on this port"),
    ("Connect to ipv4#127.0.0.1:1 failed: Connection refused", "nothing answers at that address"),
])
def test_failures_are_named(text: str, cause: str) -> None:
    assert cause in diagnose(text, "SSL")


def test_explain_prefers_the_specific_cause_over_a_timeout() -> None:
    conn = KafkaConnection(bootstrap=("127.0.0.1:9093",), security_protocol="SSL", connect_timeout_s=5)
    line = conn.explain("Failed to get metadata: Local: Broker transport failure",
                        "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: certificate verify failed")
    assert line.startswith("Kafka at 127.0.0.1:9093: TLS certificate verify failed") and "\n" not in line
    assert "no answer within 5 s" in conn.explain("Local: Timed out")


# --- no client bypasses the connection ------------------------------------------------------------

CONSTRUCTORS = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient", "AIOKafkaClient",
                "Consumer", "Producer", "AdminClient", "SerializingProducer", "DeserializingConsumer"}
FED_BY = ("confluent_config(", "aiokafka_kwargs(", "consumer_options(")


def _client_calls() -> Iterator[tuple[str, int, str]]:
    for folder in ("badges", "agents", "tables", "workers", "config", "schemas"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            source = path.read_text()
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Call):
                    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                    if name in CONSTRUCTORS:
                        yield f"{path.relative_to(ROOT)}", node.lineno, ast.get_source_segment(source, node) or ""


def test_every_kafka_client_is_built_from_the_connection() -> None:
    calls = list(_client_calls())
    assert len(calls) >= 9, calls  # the scan sees the clients (it would pass vacuously otherwise)
    bypassing = [f"{where}:{line}" for where, line, text in calls if not any(f in text for f in FED_BY)]
    assert not bypassing, f"Kafka clients not built from badges.kafka.connection: {bypassing}"


def test_the_ingest_consumer_options_come_from_the_connection() -> None:
    from badges.agents.kafka_ingest import consumer_options

    options = consumer_options(sasl("SASL_SSL", "SCRAM-SHA-256"))
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-256")


def test_the_faust_app_gets_the_credentials() -> None:
    from badges.workers.app import faust_settings

    conf = faust_settings(sasl("SASL_SSL", "SCRAM-SHA-512"))
    assert conf["broker"] == "kafka://b1:9093;kafka://b2:9093"
    assert conf["broker_credentials"].mechanism.value == "SCRAM-SHA-512"
