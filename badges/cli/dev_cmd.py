"""`badges dev` (the embedded default) and `badges dev send-sample`."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer

from badges.cli.common import console, fail
from badges.config.entities import PROVIDERS
from badges.logs import setup_logging

dev_app = typer.Typer(help="The embedded default: local broker, Credly emulator, sample configuration, one worker.")

DEFAULT_DIR = Path("data/dev")
DEMO_COURSE = "course-v1:OpenedX+DemoX+Demo_Course"
EVENT_KINDS = {
    "passing": ("org.openedx.learning.course.passing.status.updated.v1", {"is_passing": True}),
    "failing": ("org.openedx.learning.course.passing.status.updated.v1", {"is_passing": False}),
    "ccx-passing": ("org.openedx.learning.ccx.course.passing.status.updated.v1", {"is_passing": True}),
    "certificate": ("org.openedx.learning.certificate.created.v1", {}),
}


@dev_app.callback(invoke_without_command=True)
def dev(
    ctx: typer.Context,
    web_port: int = typer.Option(6066, help="web view port (0: any free port)"),
    data_dir: Path = typer.Option(DEFAULT_DIR, help="logs and the dev state file"),
    provider: str = typer.Option("credly", "--provider", help="the emulator and sample to start: credly or accredible"),
) -> None:
    """Start broker, Credly (or Accredible) emulator and a worker with the sample configuration; Ctrl-C stops all."""
    if ctx.invoked_subcommand is not None:
        return
    if provider not in PROVIDERS:
        fail(f"--provider must be one of {', '.join(PROVIDERS)}", code=2)
    setup_logging("warn")
    from badges.embedded_broker import EmbeddedBrokerError, tansu_binary

    try:  # before anything starts: production installs leave the broker out (the `embedded` extra)
        tansu_binary()
    except EmbeddedBrokerError as exc:
        fail(str(exc))
    from badges.workers.dev import run_dev

    raise typer.Exit(run_dev(web_port, data_dir, provider))


@dev_app.command("send-sample")
def send_sample(
    learner: int = typer.Option(42, help="LMS user id"),
    name: str = typer.Option("Ada Lovelace", help="full name"),
    username: str = typer.Option(None, help="username (default: learner<ID>)"),
    email: str = typer.Option(None, help="email (default: <username>@example.com)"),
    course: str = typer.Option(DEMO_COURSE, help="course key (a ccx-v1 key for ccx-passing)"),
    kind: str = typer.Option("passing", help=f"one of {', '.join(EVENT_KINDS)}"),
    data_dir: Path = typer.Option(DEFAULT_DIR, help="where `badges dev` keeps its state file"),
) -> None:
    """Send one event, in the Open edX wire format, to the running `badges dev`."""
    from confluent_kafka import Producer

    from badges.domain.events import Learner
    from badges.kafka.connection import KafkaConnection
    from badges.schemas.catalog import load_catalog
    from badges.wire.encode import encode_kafka_event
    from badges.wire.sample import sample_record
    from badges.workers.dev import dev_state

    if kind not in EVENT_KINDS:
        fail(f"--kind must be one of {', '.join(EVENT_KINDS)}", code=2)
    try:
        state = dev_state(data_dir)
    except FileNotFoundError as exc:
        fail(str(exc))
    event_type, values = EVENT_KINDS[kind]
    username = username or f"learner{learner}"
    who = Learner(id=learner, username=username, email=email or f"{username}@example.com", name=name)
    spec = load_catalog()[event_type]
    course_path = "course.ccx_course_key" if kind == "ccx-passing" else "course.course_key"
    fields: dict[str, Any] = {**values, course_path: course}
    if kind == "certificate":
        fields.update({"mode": "verified", "current_status": "downloadable"})
    record = sample_record(spec, who, fields)
    key, value, headers = encode_kafka_event(
        event_type, record, value_schema_id=1, key=course, key_schema_id=1,
        event_id=uuid.uuid1(), time=datetime.now(timezone.utc),
    )
    # the embedded broker of `badges dev`: plaintext on loopback
    producer = Producer(KafkaConnection(bootstrap=(state["bootstrap"],)).confluent_config(acks="all"))
    producer.produce(state["input_topic"], key=key, value=value,
                     headers=headers)  # type: ignore[arg-type]  # confluent's stub: list[tuple[str, str | bytes | None]]; list is invariant
    if producer.flush(10):
        fail(f"could not deliver to {state['bootstrap']}")
    console.print(f"sent {event_type} for learner {learner} ({course}) to {state['input_topic']}; see {state['web']}/learners/{learner}")
