"""Session-wide parts: one embedded broker for the whole test session (BROKER.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from badges.embedded_broker import EmbeddedBroker


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
