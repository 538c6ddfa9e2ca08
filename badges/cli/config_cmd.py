"""`badges config validate|apply|export` and `badges template activate|deactivate`."""

from __future__ import annotations

from pathlib import Path

import typer

from badges.cli.common import console, err_console, fail, settings_or_exit
from badges.config.file import document_to_entities, export_document, validate_against, validate_file
from badges.config.switch import TemplateSwitchError, removal_key, switch_template
from badges.tools.config_topic import BrokerUnavailable, publish, publish_tombstones, read_snapshot
from badges.schemas.catalog import load_catalog

config_app = typer.Typer(help="Check, publish and print the badges configuration (YAML).", no_args_is_help=True)
template_app = typer.Typer(help="Switch a badge template on or off.", no_args_is_help=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


def _report(path: Path, errors: list, warnings: list) -> None:
    for w in warnings:
        err_console.print(f"[yellow]warning:[/yellow] {path}: {w}", soft_wrap=True)
    for e in errors:
        err_console.print(f"[red]error:[/red] {path}: {e}", soft_wrap=True, markup=True)


@config_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="configuration YAML"),
    offline: bool = typer.Option(False, help="check the file alone, without the configuration topic"),
) -> None:
    """Check a configuration file; with a reachable broker, also check its references."""
    result = validate_file(_read(file), load_catalog())
    errors = list(result.errors)
    if result.document is not None and not offline:
        settings = settings_or_exit()
        try:
            snapshot = read_snapshot(settings)
        except BrokerUnavailable as exc:
            err_console.print(f"[yellow]note:[/yellow] references not checked: {exc}")
        else:
            errors += validate_against(result.document, snapshot)
    _report(file, errors, result.warnings)
    if errors:
        fail(f"{len(errors)} error(s) in {file}")
    console.print(f"{file}: valid")


@config_app.command("apply")
def apply(file: Path = typer.Argument(..., help="configuration YAML")) -> None:
    """Validate, then publish the configuration to the configuration topic."""
    settings = settings_or_exit()
    result = validate_file(_read(file), load_catalog())
    if result.document is None or result.errors:
        _report(file, result.errors, result.warnings)
        fail(f"{len(result.errors)} error(s) in {file}; nothing published")
    try:
        snapshot = read_snapshot(settings)
        errors = validate_against(result.document, snapshot)
        _report(file, errors, result.warnings)
        if errors:
            fail(f"{len(errors)} error(s) in {file}; nothing published")
        n = publish(settings, document_to_entities(result.document, snapshot))
    except BrokerUnavailable as exc:
        fail(str(exc))
    console.print(f"published {n} configuration record(s) to {settings.config_topic}")


@config_app.command("export")
def export() -> None:
    """Print the current configuration in the file format (tokens are never printed)."""
    settings = settings_or_exit()
    try:
        snapshot = read_snapshot(settings)
    except BrokerUnavailable as exc:
        fail(str(exc))
    typer.echo(export_document(snapshot), nl=False)


def _switch(uuid: str, active: bool) -> None:
    settings = settings_or_exit()
    try:
        snapshot = read_snapshot(settings)
    except BrokerUnavailable as exc:
        fail(str(exc))
    try:
        updated = switch_template(snapshot, uuid, active, load_catalog())
    except TemplateSwitchError as exc:
        fail(str(exc))
    try:
        publish(settings, [updated])
    except BrokerUnavailable as exc:
        fail(str(exc))
    console.print(f"template {uuid} {'activated' if active else 'deactivated'}")


@template_app.command("activate")
def activate(uuid: str = typer.Argument(..., help="Credly badge template id")) -> None:
    """Start processing a template (it needs at least one requirement)."""
    _switch(uuid, True)


@template_app.command("deactivate")
def deactivate(uuid: str = typer.Argument(..., help="Credly badge template id")) -> None:
    """Stop processing a template; its progress is kept."""
    _switch(uuid, False)


def remove(kind: str, uuid: str) -> None:
    """Tombstone a template or organization (docs/CONTRACT.md "Rules beyond the reference"), refused while it is in use."""
    settings = settings_or_exit()
    try:
        key = removal_key(read_snapshot(settings), kind, uuid)  # type: ignore[arg-type]  # its two commands pass "template" or "org"
        publish_tombstones(settings, [key])
    except TemplateSwitchError as exc:
        fail(str(exc))
    except BrokerUnavailable as exc:
        fail(str(exc))
    console.print(f"{'template' if kind == 'template' else 'organization'} {uuid} removed")


@template_app.command("delete")
def delete(uuid: str = typer.Argument(..., help="Credly badge template id")) -> None:
    """Remove an inactive template from the configuration; learners' progress toward it is
    dropped (their badges stay in Credly)."""
    remove("template", uuid)
