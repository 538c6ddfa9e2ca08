"""Configuration entities: what travels on the compacted ``{app_id}-config`` topic.

One record per entity, keyed ``org/{uuid}`` or ``template/{uuid}``, JSON value, tombstone (no
value) to delete. Compaction keeps the latest record per key, so every worker rebuilds the whole
configuration from the topic alone. The models ignore unknown fields so that a worker of an older
version keeps reading records written by a newer one during a rolling upgrade.

An organization's inline ``api_key`` is a ``SecretStr``: it is written to the topic (the workers
need it) but never appears in ``repr``/``str``/exports/logs.
"""

from __future__ import annotations

import json
import re
import uuid as uuid_mod
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Iterable, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from badges.domain.rule_language import BOOLEAN_WORDS_TEXT, parse_boolean_word, parse_operator
from badges.domain.timespan import parse_duration, parse_instant

# --- shared value types ------------------------------------------------------------------------

ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def normalize_operator(value: object) -> str:
    op = parse_operator(value)
    if op is not None:
        return op
    raise PydanticCustomError(
        "operator", "operator must be one of '=', '!=', 'eq', 'ne', got {got}", {"got": repr(value)}
    )


def _boolean(value: object) -> bool:
    parsed = parse_boolean_word(value)
    if parsed is None:
        raise PydanticCustomError(
            "boolean_word",
            "expected a boolean ({words}), got {got}",
            {"words": BOOLEAN_WORDS_TEXT, "got": repr(value)},
        )
    return parsed


def _canonical_uuid(value: str) -> str:
    try:
        return str(uuid_mod.UUID(value.strip()))
    except (ValueError, AttributeError):
        raise PydanticCustomError("uuid", "not a UUID: {got}", {"got": repr(value)}) from None


def _none_as_empty(value: object) -> object:
    return [] if value is None else value


def _none_as_empty_dict(value: object) -> object:
    return {} if value is None else value


def _none_as_blank(value: object) -> object:
    return "" if value is None else value


Operator = Annotated[Literal["eq", "ne"], BeforeValidator(normalize_operator)]
BooleanWord = Annotated[bool, BeforeValidator(_boolean)]
UuidStr = Annotated[str, AfterValidator(_canonical_uuid)]
Text = Annotated[str, BeforeValidator(_none_as_blank)]


def _nonblank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be empty", {})
    return value


NonBlank = Annotated[str, AfterValidator(_nonblank)]


def _checked_by(parse: Callable[[str], int], kind: str) -> Callable[[str], str]:
    """A validator that keeps the text as written once ``parse`` accepts it."""

    def check(value: str) -> str:
        try:
            parse(value)
        except ValueError as exc:
            raise PydanticCustomError(kind, "{why}", {"why": str(exc)}) from None
        return value.strip()

    return check


# Kept as written (export prints them back); the engine converts them once, when compiling.
Duration = Annotated[str, AfterValidator(_checked_by(parse_duration, "duration"))]
Instant = Annotated[str, AfterValidator(_checked_by(parse_instant, "instant"))]


def _env_var(value: str) -> str:
    if not ENV_VAR_RE.match(value):
        raise PydanticCustomError(
            "env_var", "not an environment variable name: {got}", {"got": repr(value)}
        )
    return value


EnvVarName = Annotated[str, AfterValidator(_env_var)]


# --- entities ----------------------------------------------------------------------------------

_ENTITY_CONFIG = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)


class DataRule(BaseModel):
    model_config = _ENTITY_CONFIG

    key_path: NonBlank
    operator: Operator = "eq"
    value: str


class Requirement(BaseModel):
    """An event requirement (``event_type`` and rules, optionally a time window) or a badge
    requirement (``badge``: another template's badge held by the learner)."""

    model_config = _ENTITY_CONFIG

    id: NonBlank
    event_type: Text = ""
    description: Text = ""
    group: str | None = None
    rules: Annotated[list[DataRule], BeforeValidator(_none_as_empty)] = Field(default_factory=list)
    badge: UuidStr | None = None
    not_before: Instant | None = None
    not_after: Instant | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "Requirement":
        if (self.badge is None) == (not self.event_type.strip()):
            raise PydanticCustomError(
                "requirement_kind", "a requirement has either an event_type or a badge", {}
            )
        return self


class GroupSettings(BaseModel):
    """Per-group settings of a template; a group without them needs one fulfillment. Whether
    ``min`` fits the group is compilation's finding (``group_min_out_of_range``), not a reason
    to refuse the whole record."""

    model_config = _ENTITY_CONFIG

    min: int = 1


class Penalty(BaseModel):
    model_config = _ENTITY_CONFIG

    id: NonBlank
    event_type: NonBlank
    description: Text = ""
    requirements: Annotated[list[str], BeforeValidator(_none_as_empty)] = Field(default_factory=list)
    rules: Annotated[list[DataRule], BeforeValidator(_none_as_empty)] = Field(default_factory=list)


Provider = Literal["credly", "accredible"]
PROVIDERS: tuple[str, ...] = ("credly", "accredible")


class Organization(BaseModel):
    """An issuing organization at its badge provider. A Credly organization's ``uuid`` is
    Credly's id; Accredible has no organization id (the API key names the issuer), so an
    Accredible organization's ``uuid`` is one the operator chooses."""

    model_config = _ENTITY_CONFIG

    kind: Literal["organization"] = "organization"
    uuid: UuidStr
    name: Text = ""
    provider: Provider = "credly"
    api_key_env: EnvVarName | None = None
    # Serialized in clear only by `encode_entity` (context reveal_secrets); repr shows '**********'.
    api_key: SecretStr | None = None

    @model_validator(mode="after")
    def _one_token_source(self) -> "Organization":
        if (self.api_key_env is None) == (self.api_key is None):
            raise PydanticCustomError(
                "token_source", "exactly one of api_key_env and api_key is required", {}
            )
        return self

    @field_serializer("api_key", when_used="always")
    def _dump_api_key(self, value: SecretStr | None, info: Any) -> str | None:
        if value is None:
            return None
        ctx = info.context or {}
        return value.get_secret_value() if ctx.get("reveal_secrets") else "**********"

    @property
    def has_inline_key(self) -> bool:
        return self.api_key is not None


class Template(BaseModel):
    model_config = _ENTITY_CONFIG

    kind: Literal["template"] = "template"
    uuid: UuidStr
    organization: UuidStr
    name: Text = ""
    description: Text = ""
    image_url: Text = ""
    credly_state: str = "active"  # Credly's state: active, archived, draft, deleted, ...
    is_active: bool = False
    requirements: Annotated[list[Requirement], BeforeValidator(_none_as_empty)] = Field(
        default_factory=list
    )
    penalties: Annotated[list[Penalty], BeforeValidator(_none_as_empty)] = Field(
        default_factory=list
    )
    updated_at: str | None = None  # Credly's updated_at of the template, as Credly sent it
    # An Accredible group synced as this template (its uuid then is accredible_template_uuid)
    accredible_group_id: int | None = None
    # docs/CONTRACT.md "Rules beyond the reference", all optional: absent, the template means what it meant before them.
    groups: Annotated[dict[str, GroupSettings], BeforeValidator(_none_as_empty_dict)] = Field(
        default_factory=dict
    )
    complete_within: Duration | None = None
    expires_after: Duration | None = None


Entity = Union[Organization, Template]


# --- keys and wire format ----------------------------------------------------------------------


class EntityDecodeError(ValueError):
    """A configuration record that is not a valid entity (the message never carries its value)."""


def entity_key(entity: Entity) -> str:
    if isinstance(entity, Organization):
        return f"org/{entity.uuid}"
    return f"template/{entity.uuid}"


def encode_entity(entity: Entity) -> bytes:
    """The topic value: JSON with the inline token in clear (the workers need it)."""
    data = entity.model_dump(mode="json", context={"reveal_secrets": True})
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def decode_entity(key: bytes | str, value: bytes | str | None) -> Entity | None:
    """The entity of one record; None for a tombstone. Raises EntityDecodeError otherwise."""
    k = key.decode() if isinstance(key, bytes) else key
    if value is None or value in (b"", ""):
        return None
    prefix, _, ident = k.partition("/")
    model: type[Organization] | type[Template]
    if prefix == "org":
        model = Organization
    elif prefix == "template":
        model = Template
    else:
        raise EntityDecodeError(f"unknown configuration key {k!r}")
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise EntityDecodeError(f"{k}: value is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise EntityDecodeError(f"{k}: value is not a JSON object")
    try:
        entity = model.model_validate(data)
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(entity)'}: {e['msg']}" for e in exc.errors()
        )
        raise EntityDecodeError(f"{k}: {where}") from None
    if _canonical_ident(ident) != entity.uuid:
        raise EntityDecodeError(f"{k}: record holds {entity_key(entity)}")
    return entity


def _canonical_ident(ident: str) -> str | None:
    try:
        return str(uuid_mod.UUID(ident))
    except ValueError:
        return None


# --- snapshot ----------------------------------------------------------------------------------


@dataclass
class ConfigSnapshot:
    """The whole configuration as the topic holds it (latest record per key)."""

    organizations: dict[str, Organization] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)

    @classmethod
    def from_entities(cls, entities: Iterable[Entity]) -> "ConfigSnapshot":
        snap = cls()
        for entity in entities:
            snap.put(entity)
        return snap

    @classmethod
    def from_records(
        cls, records: Iterable[tuple[bytes | str, bytes | str | None]]
    ) -> "ConfigSnapshot":
        """Replay topic records in order (tombstones delete); invalid records raise."""
        snap = cls()
        for key, value in records:
            snap.apply(key, value)
        return snap

    def apply(self, key: bytes | str, value: bytes | str | None) -> None:
        entity = decode_entity(key, value)
        if entity is not None:
            self.put(entity)
            return
        k = key.decode() if isinstance(key, bytes) else key
        prefix, _, ident = k.partition("/")
        ident = _canonical_ident(ident) or ident
        if prefix == "org":
            self.organizations.pop(ident, None)
        elif prefix == "template":
            self.templates.pop(ident, None)

    def put(self, entity: Entity) -> None:
        if isinstance(entity, Organization):
            self.organizations[entity.uuid] = entity
        else:
            self.templates[entity.uuid] = entity

    def entities(self) -> list[Entity]:
        return [*self.organizations.values(), *self.templates.values()]

    def records(self) -> list[tuple[str, bytes]]:
        return [(entity_key(e), encode_entity(e)) for e in self.entities()]
