"""`badges org add`, `badges templates sync`, `badges retry-failed`, `badges credly-emulator`,
`badges accredible-emulator`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import typer

from badges.cli.common import console, err_console, fail, settings_or_exit
from badges.config.entities import PROVIDERS, ConfigSnapshot, Organization
from badges.config.settings import Settings
from badges.credly.errors import CredlyError
from badges.credly.sync import SyncResult, UnknownOrganization, pull_active_templates, select_organizations
from badges.credly.tokens import MissingToken, organization_token
from badges.providers import build_providers
from badges.tools.config_topic import BrokerUnavailable, publish, read_snapshot

org_app = typer.Typer(help="Credly organizations.", no_args_is_help=True)
templates_app = typer.Typer(help="Credly badge templates.", no_args_is_help=True)


async def check_organization(settings: Settings, org: Organization) -> Organization:
    """Check the token with the organization's provider; returns the entity with the name the
    provider gives (Credly), else the one it had (Accredible tells none)."""
    organization_token(org)  # a missing variable is named before any call
    providers = build_providers(settings, lambda: ConfigSnapshot.from_entities([org]))
    try:
        name = await providers.for_org(org.uuid).verify(org.uuid)
    finally:
        await providers.close()
    return org.model_copy(update={"name": name or org.name})


@org_app.command("add")
def org_add(
    uuid: str = typer.Option(..., "--uuid", help="Credly organization id; for Accredible, an id you choose"),
    api_key_env: str = typer.Option(None, "--api-key-env", metavar="VAR", help="environment variable holding the token (recommended)"),
    api_key: str = typer.Option(None, "--api-key", metavar="K", help="the token itself (stored in the configuration topic)"),
    provider: str = typer.Option("credly", "--provider", help="credly or accredible"),
    name: str = typer.Option("", "--name", help="the organization's name (Accredible; Credly's name wins for Credly)"),
) -> None:
    """Check the token against the provider, then store the organization with its name."""
    if (api_key_env is None) == (api_key is None):
        fail("give exactly one of --api-key-env VAR or --api-key K", code=2)
    if provider not in PROVIDERS:
        fail(f"--provider must be one of {', '.join(PROVIDERS)}", code=2)
    settings = settings_or_exit()
    try:
        # pydantic validates the provider and wraps the key in a SecretStr
        org = Organization(uuid=uuid, name=name, provider=provider,  # type: ignore[arg-type]  # pydantic checks it
                           api_key_env=api_key_env, api_key=api_key)  # type: ignore[arg-type]  # pydantic wraps it
    except ValueError as exc:
        fail(f"invalid organization: {exc}", code=2)
    if api_key is not None:
        err_console.print("[yellow]warning:[/yellow] --api-key stores the token in the configuration topic; "
                          "prefer --api-key-env so that only the variable's name is stored")
    try:
        org = asyncio.run(check_organization(settings, org))
    except (CredlyError, MissingToken) as exc:
        fail(f"{exc}; nothing stored")
    try:
        publish(settings, [org])
    except BrokerUnavailable as exc:
        fail(str(exc))
    console.print(f"organization {org.uuid} ({org.name}) stored" + ("" if org.provider == "credly" else f", provider {org.provider}"))


async def pull_templates(settings: Settings, orgs: list[str]) -> list[SyncResult]:
    snapshot = read_snapshot(settings)
    providers = build_providers(settings, lambda: snapshot)
    try:
        return await pull_active_templates(providers, snapshot, orgs)
    finally:
        await providers.close()


@templates_app.command("sync")
def templates_sync(org: str = typer.Option(None, "--org", metavar="U", help="only this organization")) -> None:
    """Pull the active badge templates from Credly, the groups from Accredible (new ones arrive inactive)."""
    settings = settings_or_exit()
    try:
        snapshot = read_snapshot(settings)
    except BrokerUnavailable as exc:
        fail(str(exc))
    try:
        orgs = select_organizations(snapshot, org)
    except UnknownOrganization as exc:
        fail(str(exc))
    try:
        results = asyncio.run(pull_templates(settings, orgs))
        publish(settings, [e for r in results for e in r.entities])
    except (CredlyError, MissingToken, BrokerUnavailable) as exc:
        fail(str(exc))
    for r in results:
        console.print(f"organization {r.organization}: pulled {r.pulled} active template(s), {r.new} new")
        for uuid in r.no_longer_active:
            console.print(f"  note: template {uuid} is no longer active at the provider")


def retry_failed() -> None:
    """Re-drive every badge whose Credly call failed after all retries."""
    settings = settings_or_exit()
    from badges.tools.control import request_retry_failed

    try:
        n = request_retry_failed(settings)
    except BrokerUnavailable as exc:
        fail(str(exc))
    console.print(f"asked the sink of all {n} partitions to retry failed badges")


def _run_emulator(main: Callable[[str, int, str | None], None], host: str, port: int, seed: Path | None) -> None:
    if seed is not None and not seed.exists():
        fail(f"seed file {seed} does not exist", code=2)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(host, port, str(seed) if seed else None)


def credly_emulator(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8808, help="port"),
    seed: Path = typer.Option(None, help="JSON/YAML seed: organizations (uuid, name, token) and templates"),
) -> None:
    """Run the local Credly sandbox emulator (for development and tests; not Credly)."""
    from badges.credly.emulator import main

    _run_emulator(main, host, port, seed)


def accredible_emulator(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8809, help="port"),
    seed: Path = typer.Option(None, help="JSON/YAML seed: organizations (uuid, name, token) and groups"),
) -> None:
    """Run the local Accredible emulator (for development and tests; not Accredible)."""
    from badges.accredible.emulator import main

    _run_emulator(main, host, port, seed)


@org_app.command("remove")
def org_remove(uuid: str = typer.Argument(..., help="Credly organization id")) -> None:
    """Remove an organization without templates from the configuration."""
    from badges.cli.config_cmd import remove

    remove("org", uuid)
