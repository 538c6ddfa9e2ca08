"""Tutor plugin `badges`: the badges stream worker next to Open edX, in `tutor local` and `tutor k8s`.

What it adds (each piece is a template or a patch in this package, rendered by `tutor config save`):

* the LMS producer for the event types the badge configuration uses (EVENT_BUS_PRODUCER_CONFIG),
  on the event bus the site runs: Redis Streams (Tutor's default) or Kafka;
* the worker: a docker-compose service, or a StatefulSet (a volume per pod for its RocksDB state,
  a headless Service for the per-pod URLs that request routing uses, probes, a disruption budget);
* a single-node Kafka for the worker's own topics when the site has none (BADGES_RUN_KAFKA);
* the Caddy route that exposes POST /credly/webhook, and nothing else of the worker, publicly;
* the init task: organizations, template sync, then `badges config apply` of BADGES_CONFIG_YAML.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import yaml
from tutor import hooks
from tutor.exceptions import TutorError

from .__about__ import __version__
from .event_keys import EVENT_KEY_FIELDS

PACKAGE = resources.files("tutorbadges")

# The event types of the worker's sample configuration (config/sample.yaml): on by default, so
# that a new site produces what the documented example needs. List the types your
# configuration's requirements and penalties use in BADGES_EVENT_TYPES.
SAMPLE_EVENT_TYPES = [
    "org.openedx.learning.course.passing.status.updated.v1",
    "org.openedx.learning.ccx.course.passing.status.updated.v1",
    "org.openedx.learning.certificate.created.v1",
]

# Tutor's Redis, database 0: where Tutor's own edx-event-bus-redis producer writes.
TUTOR_REDIS_URL = (
    "redis://{% if REDIS_USERNAME and REDIS_PASSWORD %}{{ REDIS_USERNAME }}:{{ REDIS_PASSWORD }}@{% endif %}"
    "{{ REDIS_HOST }}:{{ REDIS_PORT }}/0"
)

DEFAULTS: dict[str, Any] = {
    "VERSION": __version__,
    # Built from the worker repository's Dockerfile and pushed to your registry.
    "DOCKER_IMAGE": "{{ DOCKER_REGISTRY }}openedx-badges-worker:{{ BADGES_VERSION }}",
    "KAFKA_DOCKER_IMAGE": "docker.io/apache/kafka:3.9.1",
    # "redis" (Tutor's own edx-event-bus-redis) or "kafka" (edx-event-bus-kafka)
    "EVENT_BUS": "redis",
    "EVENT_BUS_TOPIC_PREFIX": "dev",  # Tutor's EVENT_BUS_TOPIC_PREFIX
    "TOPIC": "learning-badges-lifecycle",
    "EVENT_TYPES": SAMPLE_EVENT_TYPES,
    "EVENT_KEY_FIELDS": {},  # event type -> event_key_field, added to or replacing the built-in ones
    "REDIS_URL": TUTOR_REDIS_URL,
    # The worker always keeps its state in Kafka topics; the LMS uses this cluster too in "kafka" mode.
    "RUN_KAFKA": True,
    "KAFKA_BOOTSTRAP_SERVERS": "badges-kafka:9092",
    "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
    "KAFKA_SASL_MECHANISM": "PLAIN",
    "KAFKA_SASL_USERNAME": "",
    "KAFKA_SASL_PASSWORD": "",
    "KAFKA_SSL_CA_PEM": "",  # the PEM text of the CA that signs the brokers' certificates
    "SCHEMA_REGISTRY_URL": "",
    "SCHEMA_REGISTRY_USERNAME": "",
    "SCHEMA_REGISTRY_PASSWORD": "",
    "APP_ID": "badges",
    "PARTITIONS": 8,
    "TOPIC_REPLICATION_FACTOR": 1,
    "CREDLY_API_URL": "https://sandbox-api.credly.com/v1/",
    "ACCREDIBLE_API_URL": "https://sandbox.api.accredible.com/v1/",  # organizations with provider: accredible
    # environment variable named by the configuration's api_key_env -> token (Credly or Accredible)
    "CREDLY_TOKENS": {},
    "CONFIG_YAML": "",  # the badge configuration (organizations, templates, ...); empty: none applied
    "WEB_PORT": 6066,
    "LOCAL_WEB_PORT": 6066,  # tutor local: the web view on the host's loopback only
    "REPLICAS": 2,
    "VOLUME_SIZE": "5Gi",
    "KAFKA_VOLUME_SIZE": "10Gi",
    # Longer than one batch takes to finish and commit (and the Faust shutdown after it).
    "TERMINATION_GRACE_PERIOD_S": 120,
}

UNIQUE: dict[str, Any] = {
    "ADMIN_TOKEN": "{{ 32|random_string }}",
    "VIEWER_TOKEN": "{{ 32|random_string }}",
    "SESSION_SECRET": "{{ 48|random_string }}",
}

hooks.Filters.CONFIG_DEFAULTS.add_items([(f"BADGES_{k}", v) for k, v in DEFAULTS.items()])
hooks.Filters.CONFIG_UNIQUE.add_items([(f"BADGES_{k}", v) for k, v in UNIQUE.items()])

hooks.Filters.ENV_TEMPLATE_ROOTS.add_item(str(PACKAGE / "templates"))
hooks.Filters.ENV_TEMPLATE_TARGETS.add_items([
    ("badges/apps", "plugins"),
    ("badges/k8s", "plugins"),
])


def event_keys(event_types: list[str], overrides: dict[str, str]) -> dict[str, str]:
    """event_key_field per produced event type; an event type with no known key stops the render
    (a producer entry without a key would fail in the LMS at the first event, not here)."""
    known = {**EVENT_KEY_FIELDS, **overrides}
    unknown = [t for t in event_types if t not in known]
    if unknown:
        raise TutorError(
            f"BADGES_EVENT_TYPES: no event_key_field known for {', '.join(unknown)}; "
            "add one to BADGES_EVENT_KEY_FIELDS"
        )
    return {t: known[t] for t in event_types}


_SAFE = re.compile(r"^[A-Za-z0-9_.:-]+$")  # what may reach the init shell script unquoted


def config_document(value: str | dict[str, Any] | None) -> dict[str, Any]:
    """BADGES_CONFIG_YAML as a mapping: a block string in config.yml, or the mapping that
    `tutor config save --set BADGES_CONFIG_YAML="$(cat badges.yaml)"` stores (--set parses YAML)."""
    document = yaml.safe_load(value) if isinstance(value, str) else value
    return document or {}


def config_text(value: str | dict[str, Any] | None) -> str:
    """The configuration file the init job applies, whichever form the setting has."""
    if isinstance(value, str):
        return value
    return str(yaml.safe_dump(config_document(value), sort_keys=False, allow_unicode=True))


def organizations(value: str | dict[str, Any] | None) -> list[dict[str, str]]:
    """The organizations of BADGES_CONFIG_YAML that the init task adds before the template sync
    (`config apply` refuses templates that are not synced yet, and syncing needs the organization)."""
    document = config_document(value)
    orgs = []
    for i, org in enumerate(document.get("organizations") or []):
        uuid, env = str(org.get("uuid", "")), str(org.get("api_key_env", ""))
        if not (_SAFE.match(uuid) and _SAFE.match(env)):
            raise TutorError(
                f"BADGES_CONFIG_YAML: organizations[{i}] needs a uuid and an api_key_env "
                "(the token itself belongs in BADGES_CREDLY_TOKENS)"
            )
        orgs.append({"uuid": uuid, "api_key_env": env})
    return orgs


hooks.Filters.ENV_TEMPLATE_FILTERS.add_items([
    ("badges_event_keys", event_keys),
    ("badges_organizations", organizations),
    ("badges_config_text", config_text),
])

for _patch in (PACKAGE / "patches").iterdir():
    hooks.Filters.ENV_PATCHES.add_item((_patch.name, _patch.read_text()))

hooks.Filters.CLI_DO_INIT_TASKS.add_item(
    ("badges", (PACKAGE / "templates" / "badges" / "tasks" / "init.sh").read_text())
)

hooks.Filters.IMAGES_PULL.add_items([
    ("badges", "{{ BADGES_DOCKER_IMAGE }}"),
    ("badges-kafka", "{{ BADGES_KAFKA_DOCKER_IMAGE }}"),
])
hooks.Filters.IMAGES_PUSH.add_item(("badges", "{{ BADGES_DOCKER_IMAGE }}"))
