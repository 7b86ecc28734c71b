"""Fixtures of the serve tests: real stores (a SQLite file; a scratch PostgreSQL schema), real ZTF
alerts (the quickstart's, shipped in docs/examples/data/ztf), and a real server (`ampel serve` in
a process of its own, uvicorn on a free port of 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ampel_postgres.testing import postgres_store_url, postgres_url

from ampel_serve.testing import Server

__all__ = ["postgres_store_url", "postgres_url"]  # fixtures, used by `store_url`

REPO = Path(__file__).resolve().parents[3]
ALERTS = REPO / "docs" / "examples" / "data" / "ztf"
JOB = Path(__file__).parent / "data" / "sn-candidates.yml"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store: a SQLite file, or a fresh schema of the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'live.db'}"
    url: str = request.getfixturevalue("postgres_store_url")
    return url


@pytest.fixture
def alerts() -> Path:
    """The quickstart's 62 real ZTF alerts (58 .avro files)."""
    return ALERTS


@pytest.fixture
def job_file() -> Path:
    """A team's job: one channel (ZTFDecentFilter, T2LightCurveSummary) and a T3 table."""
    return JOB


@pytest.fixture
def local_store_url(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second store of the same backend, for a local run to compare with."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'local.db'}"
    url: str = request.getfixturevalue("postgres_store_url_2")
    return url


@pytest.fixture
def postgres_store_url_2(postgres_url: str) -> Iterator[str]:
    from ampel_postgres.testing import scratch_schema

    with scratch_schema(postgres_url) as url:
        yield url


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start servers on ``store_url`` (watching tmp_path/drop); all are stopped at the end."""
    started: list[Server] = []
    (tmp_path / "drop").mkdir(exist_ok=True)

    def start(*options: str) -> Server:
        started.append(Server(store_url, tmp_path / "drop", tmp_path / "data", options=list(options)).start())
        return started[-1]

    yield start
    for running in started:
        if running.process is not None and running.process.poll() is None:
            running.stop()
