"""Settings: SPEC §6 names and defaults, readable errors, topic names in one place."""

from __future__ import annotations

import pytest

from badges.config.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("BADGES_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir("/")  # no .env file


def test_spec_defaults() -> None:
    s = load_settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.app_id == "badges"
    assert s.event_bus_topic_prefix == ""
    assert s.input_topic_names == ["learning-badges-lifecycle"]
    assert s.schema_registry_url is None
    assert s.credly_base == "https://sandbox-api.credly.com/v1/"
    assert s.redis_connection() == ("redis://127.0.0.1:6379/0", {})
    assert s.web_port == 6066
    assert s.admin_token is None
    assert str(s.data_dir) == "data"
    assert s.credly_timeout_s == 10


def test_environment_and_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BADGES_EVENT_BUS_TOPIC_PREFIX", "prod")
    monkeypatch.setenv("BADGES_INPUT_TOPICS", "learning-badges-lifecycle, learning-certificate-lifecycle")
    monkeypatch.setenv("BADGES_APP_ID", "acme-badges")
    s = load_settings()
    assert s.input_topic_names == ["prod-learning-badges-lifecycle", "prod-learning-certificate-lifecycle"]
    assert s.lifecycle_topic == "prod-learning-badges-lifecycle"
    assert (s.config_topic, s.dead_letter_topic) == ("acme-badges-config", "acme-badges-dead-letters")


def test_every_bad_setting_is_named_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BADGES_WEB_PORT", "70000")
    monkeypatch.setenv("BADGES_KAFKA_BOOTSTRAP_SERVERS", "nohost")
    monkeypatch.setenv("BADGES_CREDLY_API_URL", "not a url")
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    for name in ("BADGES_WEB_PORT", "BADGES_KAFKA_BOOTSTRAP_SERVERS", "BADGES_CREDLY_API_URL"):
        assert name in text


def test_admin_token_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BADGES_ADMIN_TOKEN", "s3cret-admin-token")
    s = load_settings()
    assert "s3cret-admin-token" not in repr(s) and "s3cret-admin-token" not in str(s.model_dump())


def test_redis_url_with_password_and_tls_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BADGES_REDIS_URL", "rediss://badges:s3cr%2Fet@redis.example:6380/2")
    monkeypatch.setenv("BADGES_REDIS_SSL_CA_FILE", "/etc/ssl/redis-ca.pem")
    s = load_settings()
    assert s.redis_connection() == ("rediss://badges:s3cr%2Fet@redis.example:6380/2", {"ssl_ca_certs": "/etc/ssl/redis-ca.pem"})
    assert "s3cr" not in repr(s)
    monkeypatch.setenv("BADGES_REDIS_URL", "redis://badges:pw@redis.example:6379/0")
    assert load_settings().redis_connection()[1] == {}  # no TLS: the CA file means nothing
