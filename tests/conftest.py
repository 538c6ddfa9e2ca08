"""Session-wide parts: one embedded broker for the whole test session (BROKER.md)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Iterator

import pytest

from badges.embedded_broker import EmbeddedBroker


def pytest_collection_finish(session: pytest.Session) -> None:
    """A module whose tests need a slow preparation that does not use the machine (PyPI
    downloads) may start it as soon as its selected tests are known: ``prepare_in_background(items)``."""
    selected: dict[Any, list[pytest.Item]] = {}
    for item in session.items:
        module = getattr(item, "module", None)
        if getattr(module, "prepare_in_background", None) is not None:
            selected.setdefault(module, []).append(item)
    for module, items in selected.items():
        module.prepare_in_background(items)


@pytest.fixture(scope="session", autouse=True)
def one_default_ssl_context() -> Iterator[None]:
    """Every ``httpx.get``/``post``/``request`` builds a client, and every client builds a new
    default SSLContext, loading the whole CA bundle: ~30-80 ms of CPU per request, even for
    ``http://`` URLs, on a machine whose two cores the workers under test need. The tests poll
    health, Credly and the web view thousands of times; here a default context is built once
    per CA source and shared (sharing one is what a long-lived client does). Only the default
    (``verify=True``, no client certificate) is shared: a test that passes its own context or
    ``verify=False`` gets exactly that. This process only; workers and commands are untouched."""
    try:
        from httpx._transports import default as transport
    except ImportError:  # another httpx layout: no sharing, nothing else changes
        yield
        return
    build = getattr(transport, "create_ssl_context", None)
    if build is None:
        yield
        return
    made: dict[tuple[Any, ...], ssl.SSLContext] = {}

    def shared(verify: Any = True, cert: Any = None, trust_env: bool = True) -> ssl.SSLContext:
        if verify is not True or cert is not None:
            return build(verify=verify, cert=cert, trust_env=trust_env)
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in made:
            made[key] = build(verify=verify, cert=cert, trust_env=trust_env)
        return made[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transport, "create_ssl_context", shared)
        yield


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = Path(tmp_path_factory.mktemp("broker")) / "tansu.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Files a reviewer may want to look at after a run (screenshots); not committed."""
    path = Path(__file__).resolve().parent.parent / "artifacts"
    path.mkdir(exist_ok=True)
    return path
