"""What compilation finds wrong with a configured template: one typed finding per problem.

Compilation (``domain.index.compile_template``) is the one place that checks what a template's
requirements, penalties and groups mean: event types and key paths against the catalog, ids,
penalty targets, group minimums, time windows, activation. Each finding names its place inside
the template entity (``("requirements", 1, "rules", 0, "key_path")``, field names as the
configuration file writes them), so that every reader says it in its own terms without checking
again: the web view shows ``str(finding)``, the configuration file's validator (``config.file``)
reports it at the YAML path and line of that place, ``config.switch`` refuses an activation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

# A place inside a template entity: field names and list indexes, or a group's name.
Place = tuple[Union[str, int], ...]

FindingCode = Literal[
    "event_type_refused",  # unknown, this worker's own output, or no UserData
    "key_path_unknown",
    "value_not_boolean",
    "duplicate_requirement",
    "duplicate_penalty",
    "penalty_target_unknown",
    "penalty_target_badge",
    "penalty_without_target",
    "group_without_requirement",
    "group_min_out_of_range",
    "window_reversed",
    "timespan_unreadable",
    "active_without_requirements",
    "rule_less_frequent",  # a warning: every event of a frequent type matches
    "badge_cycle",
]


@dataclass(frozen=True)
class Finding:
    """One problem of one template, placed; ``str`` is the line the web view shows."""

    code: FindingCode
    template: str  # the template's uuid ("" when the finding is about several: a badge cycle)
    subject: str  # how a person names the part at fault: "requirement 'demo' rule 2" ("": the template)
    place: Place  # inside the template entity
    message: str  # what is wrong, said without the place
    effect: str = ""  # what compilation does about it: "ignored", "never applied", ...
    severity: Literal["error", "warning"] = "error"
    related: Place | None = None  # another place it names: the first of a duplicate id
    ref: str | None = None  # the id it is about when not the subject's own: a penalty's target

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = " ".join(p for p in (f"template {self.template}" if self.template else "", self.subject) if p)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text}; {self.effect}" if self.effect else text
