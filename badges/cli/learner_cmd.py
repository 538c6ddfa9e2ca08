"""`badges learner forget`: the Open edX user-retirement step of this service (docs/CONTRACT.md "Forgetting a learner")."""

from __future__ import annotations

import orjson
import typer

from badges.kafka.offsets import is_learner_key
from badges.cli.common import console, fail, settings_or_exit
from badges.config.settings import Settings
from badges.tools.config_topic import BrokerUnavailable, read_topic
from badges.tables.definitions import PROGRESS

learner_app = typer.Typer(help="Learners.", no_args_is_help=True)


def ids_of_username(settings: Settings, username: str) -> list[int]:
    """Learner ids whose latest progress record names ``username`` (read from the changelog:
    the CLI needs no worker, and a retired account's username is what the pipeline knows)."""
    latest: dict[bytes, bytes | None] = {}
    for msg in read_topic(settings, settings.changelog_topic(PROGRESS)):
        if msg.key() is not None and is_learner_key(msg.key()):  # not a partition's applied offset
            latest[msg.key()] = msg.value()
    found = []
    for key, value in latest.items():
        if value is None:
            continue
        identity = orjson.loads(value).get("learner") or {}
        if identity.get("username") == username:
            found.append(int(key))
    return sorted(found)


@learner_app.command("forget")
def forget(
    learner_id: int = typer.Option(None, "--id", help="the LMS user id", min=0),
    username: str = typer.Option(None, "--username", help="the LMS username (looked up in the progress table)"),
) -> None:
    """Erase a learner's name, username and e-mail from every table, keeping what prevents a
    duplicate badge. The worker owning the learner's partition carries it out, in order with
    the learner's events."""
    if (learner_id is None) == (username is None):
        fail("give exactly one of --id and --username", code=2)
    settings = settings_or_exit()
    from badges.tools.control import request_forget

    try:
        ids = [learner_id] if learner_id is not None else ids_of_username(settings, username)
        if not ids:
            console.print(f"no learner with username {username!r} has progress here: nothing to forget")
            return
        for lid in ids:
            partition = request_forget(settings, lid)
            console.print(f"forget requested for learner {lid} (partition {partition}); "
                          "the worker that owns the partition carries it out")
    except BrokerUnavailable as exc:
        fail(str(exc))
