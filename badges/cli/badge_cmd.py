"""`badges badge award|revoke` (docs/CONTRACT.md "Rules beyond the reference"): an operator awards or revokes one learner's badge.

The command is published onto the learner's partition of the learner-events topic and applied
by the worker that owns it, through the same exactly-once path as the rules engine's decisions;
the badge record then shows ``cause: manual`` and the reason (the learner page shows it).
"""

from __future__ import annotations

import typer

from badges.cli.common import console, fail, settings_or_exit
from badges.tools.config_topic import BrokerUnavailable, read_snapshot
from badges.tools.control import request_manual

badge_app = typer.Typer(help="Award or revoke one learner's badge by hand.", no_args_is_help=True)

LEARNER = typer.Option(..., "--learner", help="LMS user id")
TEMPLATE = typer.Option(..., "--template", help="Credly badge template id")
REASON = typer.Option("", "--reason", help="why (kept in the badge record; sent to Credly on revoke)")


def _submit(action: str, learner: int, template: str, reason: str) -> None:
    settings = settings_or_exit()
    try:
        snapshot = read_snapshot(settings)
        if template not in snapshot.templates:
            fail(f"template {template} is not in the configuration topic")
        partition = request_manual(settings, action, learner, template, reason)
    except BrokerUnavailable as exc:
        fail(str(exc))
    console.print(f"{action} of {template} for learner {learner} submitted (partition {partition}); "
                  "the learner page shows the outcome")


@badge_app.command("award")
def award(learner: int = LEARNER, template: str = TEMPLATE, reason: str = REASON) -> None:
    """Award the badge now (issued_at: now), even after a revocation or an expiry."""
    _submit("award", learner, template, reason)


@badge_app.command("revoke")
def revoke(learner: int = LEARNER, template: str = TEMPLATE, reason: str = REASON) -> None:
    """Revoke the badge; processing never awards it again."""
    _submit("revoke", learner, template, reason)
