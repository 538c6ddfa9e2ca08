"""The Tutor plugin (deploy/tutor), rendered by a real Tutor from PyPI without Docker.

Tutor pins click>=8.4 and faust-streaming click<8.4, so Tutor cannot live in the worker's
virtualenv (operators run it from their own environment anyway): the first run builds one at
.venv/tutor (BADGES_TUTOR_VENV elsewhere), every session installs the plugin from deploy/tutor
into it as a wheel would (package data included), and each mode is rendered by `tutor config
save` into a temporary TUTOR_ROOT. The checks read the rendered files as docker compose,
kubectl/kustomize, Caddy and Django would, and validate the manifests against the Kubernetes
schemas (kubernetes-validate).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from badges.config.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "deploy" / "tutor"
TUTOR_VENV = Path(os.environ.get("BADGES_TUTOR_VENV", ROOT / ".venv" / "tutor"))
# The Tutor the plugin is tested with, and the schema validator (Kubernetes schemas bundled).
TUTOR_REQUIREMENTS = ["tutor==22.0.3", "kubernetes-validate==1.37.0"]
K8S_VERSION = "1.33.0"
SETTINGS = {f"BADGES_{name.upper()}" for name in Settings.model_fields}
# SPEC.md §9 settings being added on main (secured Kafka, viewer auth): the plugin passes them
# already; the worker ignores unknown BADGES_ variables until then.
PENDING_SETTINGS = {
    "BADGES_KAFKA_SECURITY_PROTOCOL", "BADGES_KAFKA_SASL_MECHANISM", "BADGES_KAFKA_SASL_USERNAME",
    "BADGES_KAFKA_SASL_PASSWORD", "BADGES_KAFKA_SSL_CA_FILE", "BADGES_SCHEMA_REGISTRY_USERNAME",
    "BADGES_SCHEMA_REGISTRY_PASSWORD", "BADGES_VIEWER_TOKEN", "BADGES_SESSION_SECRET",
    "BADGES_GROUP_INSTANCE_ID",
}
SAMPLE = (ROOT / "config" / "sample.yaml").read_text()
CATALOG = json.loads((ROOT / "schemas" / "catalog.json").read_text())["events"]

pytestmark = pytest.mark.timeout(600)  # the first run installs Tutor


def tutor_bin(name: str) -> str:
    return str(TUTOR_VENV / "bin" / name)


def _tutor_venv_current() -> bool:
    stamp = TUTOR_VENV / ".requirements"
    return stamp.exists() and stamp.read_text() == " ".join(TUTOR_REQUIREMENTS)


def _build_tutor_venv() -> None:
    """Tutor and the validator from PyPI into a new virtualenv; the stamp only once both are in
    (a run stopped half-way builds it again). Niced: it may run beside the integration tests."""
    nice = ["nice", "-n", "10"] if shutil.which("nice") else []
    for command in ([sys.executable, "-m", "venv", "--clear", str(TUTOR_VENV)],
                    [tutor_bin("pip"), "install", "--quiet", *TUTOR_REQUIREMENTS]):
        proc = subprocess.run([*nice, *command], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    (TUTOR_VENV / ".requirements").write_text(" ".join(TUTOR_REQUIREMENTS))


_background: list[threading.Thread] = []
_background_errors: list[BaseException] = []


def prepare_in_background(items: list[pytest.Item]) -> None:
    """Start building the Tutor virtualenv now if a selected test needs it and it is missing
    (tests/conftest.py calls this after collection): on a fresh clone the ~100 s of PyPI
    downloads then overlap with the integration tests, which pytest runs first. ``tutor_env``
    waits for it."""
    needed = any("tutor_env" in getattr(item, "fixturenames", ()) for item in items)
    if not needed or _background or _tutor_venv_current():
        return

    def build() -> None:
        try:
            _build_tutor_venv()
        except BaseException as exc:  # noqa: BLE001 - handed to the fixture, which raises it
            _background_errors.append(exc)

    _background.append(threading.Thread(target=build, name="tutor-venv", daemon=True))
    _background[0].start()


@pytest.fixture(scope="session")
def tutor_env() -> Path:
    """A virtualenv with Tutor and the plugin freshly installed from deploy/tutor."""
    for thread in _background:
        thread.join()
    if _background_errors:
        raise _background_errors[0]
    if not _tutor_venv_current():
        _build_tutor_venv()
    subprocess.run([tutor_bin("pip"), "install", "--quiet", "--no-deps", "--force-reinstall", str(PLUGIN)],
                   check=True, capture_output=True)
    return TUTOR_VENV


@dataclass
class Rendered:
    """One `tutor config save` of the plugin: the Tutor root and readers for what it wrote."""

    root: Path

    @property
    def env(self) -> Path:
        return self.root / "env"

    def yaml(self, rel: str) -> dict[str, Any]:
        return yaml.safe_load((self.env / rel).read_text())

    def docs(self, rel: str) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all((self.env / rel).read_text()) if d]

    def k8s(self, kind: str, name: str) -> dict[str, Any]:
        for doc in self.docs("plugins/badges/k8s/badges.yml") + self.docs("k8s/jobs.yml"):
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"{kind}/{name}")

    def envfile(self, rel: str) -> dict[str, str]:
        """KEY=VALUE lines as docker compose's env_file and kustomize's `envs` read them."""
        lines = (self.env / rel).read_text().splitlines()
        return dict(ln.split("=", 1) for ln in lines if ln.strip() and not ln.startswith("#"))

    def settings_section(self, rel: str, begin: str, end: str, namespace: dict[str, Any]) -> dict[str, Any]:
        """Runs the plugin's part of a rendered Django settings file on top of `namespace`."""
        text = (self.env / rel).read_text()
        start = text.index(begin)
        exec(compile(text[start:text.index(end, start)], rel, "exec"), namespace)
        return namespace


def tutor(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TUTOR_ROOT": str(root), "TUTOR_PLUGINS_ROOT": str(root / "plugins")}
    proc = subprocess.run([tutor_bin("tutor"), *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def render(root: Path, **settings: Any) -> Rendered:
    tutor(root, "plugins", "enable", "badges")
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={json.dumps(v) if not isinstance(v, str) else v}")]
    tutor(root, "config", "save", *sets)
    return Rendered(root)


def _real_ca_pem() -> str:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=tutor test CA", "-keyout", f"{d}/key.pem", "-out", f"{d}/ca.pem"],
                       check=True, capture_output=True)
        return Path(f"{d}/ca.pem").read_text().strip()


KAFKA_MODE = {
    "BADGES_EVENT_BUS": "kafka",
    "BADGES_RUN_KAFKA": False,
    "BADGES_KAFKA_BOOTSTRAP_SERVERS": "kafka-1.example.com:9093,kafka-2.example.com:9093",
    "BADGES_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "BADGES_KAFKA_SASL_USERNAME": "api-key",
    "BADGES_KAFKA_SASL_PASSWORD": "p\"w'$ecret",
    "BADGES_SCHEMA_REGISTRY_URL": "https://registry.example.com",
    "BADGES_SCHEMA_REGISTRY_USERNAME": "sr-key",
    "BADGES_SCHEMA_REGISTRY_PASSWORD": "sr-secret",
    "BADGES_EVENT_BUS_TOPIC_PREFIX": "prod",
    "BADGES_CREDLY_TOKENS": {"CREDLY_TOKEN_ACME": "credly-token"},
    "BADGES_CONFIG_YAML": SAMPLE,
    "BADGES_REPLICAS": 3,
    "BADGES_KAFKA_SSL_CA_PEM": _real_ca_pem(),  # the worker loads it at start: a real certificate
}
# --set parses its value as YAML: a quoted value keeps its line breaks
KAFKA_MODE_SET = KAFKA_MODE | {"BADGES_KAFKA_SSL_CA_PEM": json.dumps(KAFKA_MODE["BADGES_KAFKA_SSL_CA_PEM"])}


@pytest.fixture(scope="session")
def redis_mode(tutor_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """The defaults: Tutor's own Redis Streams bus, and a one-node Kafka for the worker."""
    return render(tmp_path_factory.mktemp("tutor-redis"))


@pytest.fixture(scope="session")
def kafka_mode(tutor_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """A site on an external, secured Kafka cluster with a schema registry."""
    return render(tmp_path_factory.mktemp("tutor-kafka"), **KAFKA_MODE_SET)


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment as its container sees it ("$$" is compose's escaped "$")."""
    assert "env_file" not in service  # compose would interpolate "$" in an env file's values
    lone = {k for k, v in service["environment"].items() if "$" in str(v).replace("$$", "")}
    assert not lone, f"compose would interpolate {sorted(lone)}"
    return {k: str(v).replace("$$", "$") for k, v in service["environment"].items()}


def worker_env(r: Rendered) -> dict[str, str]:
    """What the docker-compose worker sees; the same settings as the Kubernetes ConfigMap and Secret."""
    env = compose_env(r.yaml("local/docker-compose.yml")["services"]["badges-worker"])
    shared = r.envfile("plugins/badges/apps/worker.env") | r.envfile("plugins/badges/apps/secrets.env")
    assert {k: env[k] for k in shared} == shared
    return env


def worker_settings(env: dict[str, str], rendered: "Rendered | None" = None) -> Settings:
    """The settings the worker loads from ``env``; files the pods mount at /etc/badges (the Kafka
    CA) are read from ``rendered``'s configuration directory, where the plugin renders them."""
    badges = {k for k in env if k.startswith("BADGES_")}
    assert not badges - SETTINGS - PENDING_SETTINGS, f"not settings: {sorted(badges - SETTINGS - PENDING_SETTINGS)}"
    values = {k.removeprefix("BADGES_").lower(): v for k, v in env.items() if k[7:].lower() in Settings.model_fields}
    ca = values.get("kafka_ssl_ca_file")
    if ca and rendered is not None:
        values["kafka_ssl_ca_file"] = str(rendered.env / "plugins/badges/apps/config" / Path(ca).name)
    return load_settings(**values)


# --- the LMS producer ------------------------------------------------------------------------

LMS_SETTINGS = "apps/openedx/settings/lms/production.py"
LMS_PART = ("# badges (tutor-contrib-badges): produce", "######## End of common LMS settings")
BUS_PART = ("# badges (tutor-contrib-badges): the site's event bus", "######## End of settings common")


def sample_event_types() -> list[str]:
    document = yaml.safe_load(SAMPLE)
    return sorted({item["event_type"] for t in document["templates"]
                   for item in t.get("requirements", []) + t.get("penalties", []) if "event_type" in item})


def test_the_lms_produces_the_sample_configurations_events_by_default_and_keeps_the_sites_own(redis_mode: Rendered) -> None:
    site = {"org.openedx.content_authoring.xblock.published.v1": {"course-authoring-xblock-lifecycle": {
        "event_key_field": "xblock_info.usage_key", "enabled": True}},
        "org.openedx.learning.course.passing.status.updated.v1": {
            "learning-badges-lifecycle": {"event_key_field": "course_passing_status.course.course_key", "enabled": False}}}
    ns = redis_mode.settings_section(LMS_SETTINGS, *LMS_PART, {"FEATURES": {}, "EVENT_BUS_PRODUCER_CONFIG": site})
    config = ns["EVENT_BUS_PRODUCER_CONFIG"]
    assert ns["FEATURES"]["BADGES_ENABLED"] is True and ns["BADGES_ENABLED"] is True
    produced = sorted(t for t, topics in config.items() if topics.get("learning-badges-lifecycle", {}).get("enabled"))
    assert produced == sample_event_types()
    assert config["org.openedx.learning.course.passing.status.updated.v1"]["learning-badges-lifecycle"][
        "event_key_field"] == "course_passing_status.course.course_key"
    assert "org.openedx.content_authoring.xblock.published.v1" in config  # the site's entries stay
    # without a site value, the patch defines the setting itself
    assert redis_mode.settings_section(LMS_SETTINGS, *LMS_PART, {"FEATURES": {}})["EVENT_BUS_PRODUCER_CONFIG"]


def test_every_event_key_field_is_a_path_of_its_event() -> None:
    sys.path.insert(0, str(PLUGIN))
    try:
        from tutorbadges.event_keys import EVENT_KEY_FIELDS
    finally:
        sys.path.remove(str(PLUGIN))
    inputs = {t for t, ev in CATALOG.items() if not ev["own_output"]}
    assert set(EVENT_KEY_FIELDS) == inputs
    for event_type, field in EVENT_KEY_FIELDS.items():
        assert field in CATALOG[event_type]["key_paths"], (event_type, field)


def test_redis_mode_the_lms_writes_the_stream_the_worker_reads(redis_mode: Rendered) -> None:
    bus = redis_mode.settings_section(LMS_SETTINGS, *BUS_PART, {})
    settings = worker_settings(worker_env(redis_mode))
    assert bus["EVENT_BUS_PRODUCER"] == "edx_event_bus_redis.create_producer"
    assert bus["EVENT_BUS_REDIS_CONNECTION_URL"] == settings.redis_url.get_secret_value() == "redis://redis:6379/0"
    # edx-event-bus-redis writes stream "{EVENT_BUS_TOPIC_PREFIX}-{topic}"
    assert settings.redis_stream_names == [f"{bus['EVENT_BUS_TOPIC_PREFIX']}-learning-badges-lifecycle"]
    assert settings.kafka_bootstrap_servers == "badges-kafka:9092"  # the worker's own topics


def test_kafka_mode_the_lms_produces_to_the_cluster_and_registry_the_worker_reads(kafka_mode: Rendered) -> None:
    bus = kafka_mode.settings_section(LMS_SETTINGS, *BUS_PART, {})
    env = worker_env(kafka_mode)
    settings = worker_settings(env, kafka_mode)
    assert bus["EVENT_BUS_PRODUCER"] == "edx_event_bus_kafka.create_producer"
    assert bus["EVENT_BUS_KAFKA_BOOTSTRAP_SERVERS"] == settings.kafka_bootstrap_servers == KAFKA_MODE["BADGES_KAFKA_BOOTSTRAP_SERVERS"]
    assert bus["EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL"] == str(settings.schema_registry_url).rstrip("/")
    assert (bus["EVENT_BUS_KAFKA_API_KEY"], bus["EVENT_BUS_KAFKA_API_SECRET"]) == (
        env["BADGES_KAFKA_SASL_USERNAME"], env["BADGES_KAFKA_SASL_PASSWORD"]) == ("api-key", "p\"w'$ecret")
    assert bus["EVENT_BUS_KAFKA_SCHEMA_REGISTRY_API_SECRET"] == env["BADGES_SCHEMA_REGISTRY_PASSWORD"]
    assert settings.input_topic_names == [f"{bus['EVENT_BUS_TOPIC_PREFIX']}-learning-badges-lifecycle"]
    assert settings.redis_stream_names == []
    assert env["BADGES_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    # the CA travels in the configuration directory that the worker and the job mount at /etc/badges
    ca = Path(env["BADGES_KAFKA_SSL_CA_FILE"])
    assert ca.parent == Path("/etc/badges")
    assert (kafka_mode.env / "plugins/badges/apps/config" / ca.name).read_text().strip() == KAFKA_MODE["BADGES_KAFKA_SSL_CA_PEM"]
    assert f"plugins/badges/apps/config/{ca.name}" in next(
        g["files"] for g in kafka_mode.yaml("kustomization.yml")["configMapGenerator"] if g["name"] == "badges-config")
    # the openedx image gets the Kafka client edx-event-bus-kafka leaves to the site
    assert "confluent-kafka[avro,schemaregistry]" in (kafka_mode.env / "build/openedx/Dockerfile").read_text()


def test_an_event_type_without_a_known_key_stops_the_render(tutor_env: Path, tmp_path: Path) -> None:
    tutor(tmp_path, "plugins", "enable", "badges")
    proc = tutor(tmp_path, "config", "save", "--set", 'BADGES_EVENT_TYPES=["org.example.unknown.v1"]', check=False)
    assert proc.returncode != 0 and "BADGES_EVENT_KEY_FIELDS" in proc.stdout + proc.stderr
    tutor(tmp_path, "config", "save", "--set", 'BADGES_EVENT_TYPES=["org.example.unknown.v1"]',
          "--set", 'BADGES_EVENT_KEY_FIELDS={"org.example.unknown.v1": "thing.id"}')


# --- tutor local -----------------------------------------------------------------------------

def test_tutor_local_runs_the_worker_with_its_state_and_web_view_kept_inside(redis_mode: Rendered) -> None:
    services = redis_mode.yaml("local/docker-compose.yml")["services"]
    worker = services["badges-worker"]
    settings = worker_settings(worker_env(redis_mode))
    assert settings.web_host == "0.0.0.0" and settings.store == "rocksdb"
    assert str(settings.web_canonical_url).rstrip("/") == f"http://badges-worker:{settings.web_port}"
    assert f"../../data/badges:{settings.data_dir}:z" in worker["volumes"]
    assert all(p.startswith("127.0.0.1:") for p in worker["ports"])  # the web view: loopback only
    assert {"badges-kafka", "redis", "permissions"} <= set(worker["depends_on"])
    assert services["badges-kafka"]["image"].startswith("docker.io/apache/kafka:")
    kafka_env = redis_mode.envfile("plugins/badges/apps/kafka.env")
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka_env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{settings.kafka_bootstrap_servers}"
    # the bind-mounted state belongs to the image's user (10001) before the worker starts
    permissions = services["permissions"]
    assert "../../data/badges:/mounts/badges:z" in permissions["volumes"]
    assert "setowner 10001 /mounts/badges" in (redis_mode.env / "apps/permissions/setowners.sh").read_text()


def test_kafka_mode_runs_no_kafka_of_its_own(kafka_mode: Rendered) -> None:
    services = kafka_mode.yaml("local/docker-compose.yml")["services"]
    assert "badges-kafka" not in services
    assert "badges-kafka" not in services["badges-worker"]["depends_on"]
    assert not any(d["metadata"]["name"].startswith("badges-kafka") for d in kafka_mode.docs("plugins/badges/k8s/badges.yml"))


def test_only_the_credly_webhook_is_routed_publicly(redis_mode: Rendered) -> None:
    caddy = (redis_mode.env / "apps/caddy/Caddyfile").read_text()
    assert caddy.count("badges-worker") == 1
    block = caddy[caddy.index("@badges_credly_webhook {"):]
    matcher, handler = block.split("}", 1)
    assert "method POST" in matcher and "path /credly/webhook" in matcher
    assert "handle @badges_credly_webhook" in handler and "reverse_proxy badges-worker:6066" in handler


def init_script(r: Rendered, check: bool = True) -> str:
    """The init task as `tutor local do init` / `tutor k8s do init` renders it."""
    code = ("import sys; from tutor import config, env, hooks;"
            "hooks.Actions.CORE_READY.do(); hooks.Actions.PROJECT_ROOT_READY.do(sys.argv[1]);"
            "cfg = config.load(sys.argv[1]);"
            "print(''.join(env.render_str(cfg, task) for service, task in hooks.Filters.CLI_DO_INIT_TASKS.iterate()"
            " if service == 'badges'))")
    proc = subprocess.run([tutor_bin("python"), "-c", code, str(r.root)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TUTOR_PLUGINS_ROOT": str(r.root / "plugins")})
    if check:
        assert proc.returncode == 0, proc.stderr
        return proc.stdout
    return proc.stdout + proc.stderr


def test_the_init_job_adds_the_organizations_syncs_then_applies_the_configuration(kafka_mode: Rendered) -> None:
    script = [ln.strip() for ln in init_script(kafka_mode).splitlines() if ln.strip() and not ln.startswith("#")]
    assert script == [
        "badges org add --uuid 0b8a3f0e-0000-4000-8000-000000000001 --api-key-env CREDLY_TOKEN_ACME",
        "badges templates sync",
        "badges config apply /etc/badges/config.yaml",
    ]
    assert yaml.safe_load((kafka_mode.env / "plugins/badges/apps/config/config.yaml").read_text()) == yaml.safe_load(SAMPLE)
    job = kafka_mode.yaml("local/docker-compose.jobs.yml")["services"]["badges-job"]
    assert job["entrypoint"] == ["/usr/bin/env"]  # `sh -e -c SCRIPT` runs instead of `badges`
    assert "../plugins/badges/apps/config:/etc/badges:ro" in job["volumes"]
    per_worker = {"BADGES_WEB_CANONICAL_URL", "BADGES_GROUP_INSTANCE_ID", "BADGES_REDIS_CONSUMER_NAME"}
    assert compose_env(job) == {k: v for k, v in worker_env(kafka_mode).items() if k not in per_worker}


def test_the_configuration_may_also_be_a_yaml_text(tutor_env: Path, tmp_path: Path) -> None:
    r = render(tmp_path, BADGES_CONFIG_YAML=json.dumps(SAMPLE))  # as a block string in config.yml
    assert (r.env / "plugins/badges/apps/config/config.yaml").read_text().strip() == SAMPLE.strip()
    assert "--api-key-env CREDLY_TOKEN_ACME" in init_script(r)


def test_an_inline_token_stops_the_init_job_before_it_reaches_the_shell(tutor_env: Path, tmp_path: Path) -> None:
    config = {"organizations": [{"uuid": "0b8a3f0e-0000-4000-8000-000000000001", "api_key": "secret; rm -rf /"}]}
    output = init_script(render(tmp_path, BADGES_CONFIG_YAML=config), check=False)
    assert "organizations[0] needs a uuid and an api_key_env" in output and "badges org add" not in output


def test_without_a_configuration_the_init_job_applies_nothing(redis_mode: Rendered) -> None:
    script = init_script(redis_mode)
    assert "badges config apply" not in script and "BADGES_CONFIG_YAML is empty" in script


# --- tutor k8s -------------------------------------------------------------------------------

def container(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]["containers"][0]


def test_the_workers_are_a_statefulset_with_a_volume_per_pod_and_per_pod_identity(kafka_mode: Rendered) -> None:
    sts = kafka_mode.k8s("StatefulSet", "badges-worker")
    headless = kafka_mode.k8s("Service", sts["spec"]["serviceName"])
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["selector"].items() <= pod_labels.items()
    assert sts["spec"]["replicas"] == 3
    c = container(sts)
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    port = int(kafka_mode.envfile("plugins/badges/apps/worker.env")["BADGES_WEB_PORT"])
    assert env["BADGES_WEB_CANONICAL_URL"]["value"] == f"http://$(POD_NAME).{headless['metadata']['name']}:{port}"
    assert env["BADGES_GROUP_INSTANCE_ID"]["value"] == env["BADGES_REDIS_CONSUMER_NAME"]["value"] == "$(POD_NAME)"
    assert list(env)[0] == "POD_NAME"  # $(POD_NAME) only expands from variables defined before
    claims = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    data_dir = kafka_mode.envfile("plugins/badges/apps/worker.env")["BADGES_DATA_DIR"]
    assert mounts[next(iter(claims))] == data_dir
    assert claims[next(iter(claims))]["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_probes_grace_period_disruption_budget_and_non_root(redis_mode: Rendered) -> None:
    sts = redis_mode.k8s("StatefulSet", "badges-worker")
    c, pod = container(sts), sts["spec"]["template"]["spec"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["readinessProbe"]["httpGet"]["port"] == c["ports"][0]["name"]
    # SIGTERM: longer than Kubernetes' 30 s default, so a batch and the Faust shutdown finish
    assert pod["terminationGracePeriodSeconds"] >= 120
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
    pdb = redis_mode.k8s("PodDisruptionBudget", "badges-worker")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_settings_come_from_a_configmap_and_secrets_from_a_secret(kafka_mode: Rendered) -> None:
    sts = kafka_mode.k8s("StatefulSet", "badges-worker")
    job = kafka_mode.k8s("Job", "badges-job")
    kustomization = kafka_mode.yaml("kustomization.yml")
    generators = {g["name"]: g for g in kustomization["configMapGenerator"]}
    for workload in (sts, job):
        refs = container(workload)["envFrom"]
        config_map = next(r["configMapRef"]["name"] for r in refs if "configMapRef" in r)
        secret = next(r["secretRef"]["name"] for r in refs if "secretRef" in r)
        assert generators[config_map]["envs"] == ["plugins/badges/apps/worker.env"]
        assert kafka_mode.k8s("Secret", secret)["stringData"] == kafka_mode.envfile("plugins/badges/apps/secrets.env")
    stored = kafka_mode.k8s("Secret", "badges-secrets")["stringData"]
    assert stored["CREDLY_TOKEN_ACME"] == "credly-token" and stored["BADGES_KAFKA_SASL_PASSWORD"] == "p\"w'$ecret"
    assert not {k for k in kafka_mode.envfile("plugins/badges/apps/worker.env") if "PASSWORD" in k or "TOKEN" in k}
    assert "plugins/badges/k8s/badges.yml" in kustomization["resources"]
    for generator in generators.values():
        for rel in generator.get("files", []) + generator.get("envs", []):
            assert (kafka_mode.env / rel).exists(), rel
    # the init job: Tutor's convention for replacing the image's entrypoint, and the configuration
    assert container(job)["command"] == []
    assert job["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] in generators
    assert container(job)["volumeMounts"][0]["mountPath"] == "/etc/badges"
    assert worker_settings(kafka_mode.envfile("plugins/badges/apps/worker.env") | stored, kafka_mode).web_host == "0.0.0.0"


@pytest.mark.parametrize("mode", ["redis_mode", "kafka_mode"])
def test_the_manifests_validate_against_the_kubernetes_schemas(mode: str, request: pytest.FixtureRequest) -> None:
    r: Rendered = request.getfixturevalue(mode)
    files = [r.env / "plugins/badges/k8s/badges.yml", r.env / "k8s/jobs.yml"]
    proc = subprocess.run([tutor_bin("kubernetes-validate"), "-k", K8S_VERSION, "--strict", *map(str, files)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed") == sum(len(r.docs(str(f.relative_to(r.env)))) for f in files)


def test_the_schema_validation_rejects_a_misspelt_field(tutor_env: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {clusterIp: None}\n")
    proc = subprocess.run([tutor_bin("kubernetes-validate"), "-k", K8S_VERSION, "--strict", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "clusterIp" in proc.stdout + proc.stderr
