"""Shared fixtures. Each section is delimited by a header comment; helpers live in their own modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import Mosquitto
from pg_server import PostgresServer, PostgresUnavailable

# --- Browser ------------------------------------------------------------------------------
# Headless Chromium with the no-foreign-request guard: `chromium`, `browser_page` (tests/browser_harness.py).
pytest_plugins = ["browser_harness"]
# --- end Browser --------------------------------------------------------------------------

# --- PostgreSQL ---------------------------------------------------------------------------
# A real PostgreSQL started once per session (tests/pg_server.py), a fresh database per test.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


# --- end PostgreSQL -----------------------------------------------------------------------


# --- Mosquitto ---


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto on a free loopback port, no persistence; stopped after the test."""
    server = Mosquitto(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()
