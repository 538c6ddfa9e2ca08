"""The `badges` command (docs/CONTRACT.md "Interfaces")."""

from __future__ import annotations

import typer

from badges.cli.badge_cmd import badge_app
from badges.cli.common import err_console, fail, settings_or_exit
from badges.logs import setup_logging
from badges.cli.config_cmd import config_app, template_app
from badges.cli.credly_cmd import accredible_emulator, credly_emulator, org_app, retry_failed, templates_app
from badges.cli.dev_cmd import dev_app
from badges.cli.learner_cmd import learner_app
from badges.cli.replay_cmd import replay

app = typer.Typer(
    name="badges",
    help="Open edX badges stream worker: Credly badges from openedx-events on Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(config_app, name="config")
app.add_typer(template_app, name="template")
app.add_typer(org_app, name="org")
app.add_typer(templates_app, name="templates")
app.add_typer(dev_app, name="dev")
app.add_typer(badge_app, name="badge")
app.add_typer(learner_app, name="learner")
app.command("replay")(replay)
app.command("retry-failed")(retry_failed)
app.command("credly-emulator")(credly_emulator)
app.command("accredible-emulator")(accredible_emulator)


@app.command("worker")
def worker() -> None:
    """Run a worker: all agents, tables and the web server (settings from BADGES_* variables)."""
    settings = settings_or_exit()
    setup_logging(settings.log_level, settings.log_format)
    from badges.compat import InternalsMismatch
    from badges.workers.worker import DataDirInUse, run_worker

    try:
        run_worker(settings)
    except InternalsMismatch as exc:
        fail(str(exc), code=2)
    except DataDirInUse as exc:
        fail(str(exc))


def main() -> None:
    """Run a command; a broker or registry that cannot be used ends it with one line, not a traceback."""
    from badges.kafka.connection import BrokerUnavailable
    from badges.wire.registry import RegistryError

    try:
        app()
    except (BrokerUnavailable, RegistryError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", markup=True, soft_wrap=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
