"""The worker's Faust tables.

Values are opaque bytes (orjson) written by the agents themselves: the hot path decides when a
record changed and writes it once per batch, instead of paying Faust's per-assignment changelog
path. Faust still owns what matters: changelog topics, recovery after a crash, standby
replicas, and routing a key to the worker that owns its partition.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, cast

import faust

from badges.config.settings import Settings

RAW: faust.Schema = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
# Tables take their serializers from key_type/value_type (not from the schema): both are given.

PROGRESS = "progress"
ISSUANCE = "issuance"
CONFIG = "config"


def progress_table(app: faust.App, settings: Settings) -> faust.Table:
    """Per learner: identity, fulfilled requirements (and by which event), resets, badges decided."""
    # app.Table is declared to return the TableT interface; it builds a faust.Table
    return cast(faust.Table, app.Table(
        PROGRESS, schema=RAW, key_type=bytes, value_type=bytes, partitions=settings.partitions, help="learner progress", default=None
    ))


def issuance_table(app: faust.App, settings: Settings) -> faust.Table:
    """Per learner: what Credly did with each decided badge (id, state, attempts, errors)."""
    return cast(faust.Table, app.Table(
        ISSUANCE, schema=RAW, key_type=bytes, value_type=bytes, partitions=settings.partitions, help="Credly issuance", default=None
    ))


class ConfigTable(faust.GlobalTable):
    """A GlobalTable whose changelog is the configuration topic itself.

    Faust's partition assignor derives a global table's changelog name from the table name
    (``{app_id}-{name}-changelog``) even when ``changelog_topic`` is given, and the assignment
    then fails on the unknown topic; this table reports its real changelog topic instead.
    """

    def _changelog_topic_name(self) -> str:
        return self.changelog_topic.get_topic_name()


def config_table(
    app: faust.App, settings: Settings, on_change: Callable[[Any], Awaitable[None]]
) -> ConfigTable:
    """The whole configuration on every worker; its changelog *is* the configuration topic."""
    topic = app.topic(
        settings.config_topic,
        schema=RAW,
        partitions=1,
        compacting=True,
        deleting=False,
    )
    # What app.GlobalTable() does, with our subclass.
    table = ConfigTable(
        app,
        name=CONFIG,
        beacon=app.tables.beacon,
        schema=RAW,
        key_type=bytes,
        value_type=bytes,
        partitions=1,
        changelog_topic=topic,
        on_changelog_event=on_change,
        standby_buffer_size=1,
        is_global=True,
        # keeps every partition a standby after recovery as well, so that changes published
        # while the worker runs keep arriving (without it Faust only reads the topic at start)
        synchronize_all_active_partitions=True,
        help="configuration entities",
        default=None,
    )
    return app.tables.add(table)  # type: ignore[return-value]  # add returns the ConfigTable it is given
