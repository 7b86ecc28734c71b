"""A real store for the read side's tests: the 62 real ZTF alerts shipped in docs/examples/data/ztf
through the jobs of three teams, uploaded as the server keeps them and run as a local job would.

- alpha (rights ZTF_PUB): channel ALPHA_ALL accepts every alert; T2LightCurveSummary.
- beta (rights ZTF_PUB, ZTF_PRIV): BETA_ALL accepts every alert with both rights (no T2); BETA_RHU
  takes SN 2021rhu's latest alert and fits SALT2 at a fixed redshift.
- gamma (rights ZTF_PUB): no job, so no channel.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_serve.app import ServeSettings, create_app

REPO = Path(__file__).resolve().parents[4]
ALERTS = REPO / "docs" / "examples" / "data" / "ztf"
LAST_RHU_ALERT = 1707409520815015012  # SN 2021rhu's latest alert: its whole history

ALPHA = {"name": "alpha-job", "channels": [
    {"name": "ALPHA_ALL", "access": ["ZTF_PUB"], "filter": {"unit": "AcceptAll"},
     "t2": [{"unit": "T2LightCurveSummary"}]}], "tasks": [{"tier": 2}]}
BETA = {"name": "beta-job", "channels": [
    {"name": "BETA_ALL", "access": ["ZTF_PUB", "ZTF_PRIV"], "filter": {"unit": "AcceptAll"},
     "t2": []},
    {"name": "BETA_RHU", "access": ["ZTF_PUB"],
     "filter": {"unit": "ZTFAttributeFilter", "config": {"criteria": [
         {"attribute": "alert.objectId", "operator": "==", "value": "ZTF21abiuvdk"},
         {"attribute": "candid", "operator": "==", "value": LAST_RHU_ALERT}]}},
     "t2": [{"unit": "T2SNCosmoFit", "config": {"source": "salt2", "source_version": "2.4", "min_detections": 10,
                                                "redshift": {"kind": "fixed", "value": 0.0035},
                                                "bounds": {"x1": [-5, 5], "c": [-0.5, 1.0]}}}]}],
        "tasks": [{"tier": 2}]}


@dataclass
class ReadStore:
    url: str
    data_dir: Path
    tokens: dict[str, str]  # team -> token


def build_read_store(url: str, data_dir: Path) -> ReadStore:
    """The teams, their uploaded jobs and the alerts run through them, in the store at ``url``."""
    from ampel_serve.jobs import JobBook
    from ampel_serve.teams import TeamBook

    if not ALERTS.is_dir():
        pytest.skip(f"{ALERTS} is missing (it ships with the repository)")
    data_dir.mkdir(exist_ok=True)
    teams = TeamBook(url)
    tokens = {"alpha": teams.add_team("alpha", ["ZTF_PUB"]), "beta": teams.add_team("beta", ["ZTF_PUB", "ZTF_PRIV"]),
              "gamma": teams.add_team("gamma", ["ZTF_PUB"])}
    jobs = JobBook(url, data_dir, teams)
    for team, job in (("alpha", ALPHA), ("beta", BETA)):
        jobs.submit(teams.team(team), yaml.safe_dump(job).encode(), 1 << 20)
    jobs.close()
    teams.close()
    local = {"name": "read-fixture", "store": url, "channels": ALPHA["channels"] + BETA["channels"],
             "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(ALERTS)], "pattern": "*.avro"}},
                        "format": {"name": "ztf"}}, {"tier": 2}]}
    run_job(load_job(local))
    return ReadStore(url, data_dir, tokens)


@pytest.fixture(scope="session")
def read_store_builder() -> Any:
    """`build_read_store`, for tests that need the same store on another backend."""
    return build_read_store


@pytest.fixture(scope="session")
def read_store(tmp_path_factory: pytest.TempPathFactory) -> ReadStore:
    folder = tmp_path_factory.mktemp("read")
    return build_read_store(f"sqlite:///{folder}/store.db", folder / "data")


@pytest.fixture(scope="session")
def server(read_store: ReadStore) -> Iterator[str]:
    """The app (no ingestion) served by uvicorn on a free port of 127.0.0.1; its base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(ServeSettings(store=read_store.url, data_dir=read_store.data_dir))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(10)
