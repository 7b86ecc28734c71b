from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def sample_alerts() -> Path:
    """46 real ZTF alerts in the core's JSON-lines format (see tests/data/README.md)."""
    return DATA / "ztf_sample.jsonl"


@pytest.fixture
def split_alerts(tmp_path: Path, sample_alerts: Path) -> Path:
    """The same alerts one per file (a directory source yields one record per file)."""
    folder = tmp_path / "alerts"
    folder.mkdir()
    for number, line in enumerate(sample_alerts.read_text().splitlines()):
        (folder / f"{number:04d}.json").write_text(line + "\n")
    return folder


def copies_of_sample(folder: Path, copies: int, one_per_file: bool = True) -> Path:
    """``copies`` renamed copies of the 46 sample alerts (new stock names and ids) in ``folder``:
    one alert per file, or one file of 46 alerts per copy."""
    folder.mkdir(exist_ok=True)
    lines = (DATA / "ztf_sample.jsonl").read_text().splitlines()
    for copy in range(copies):
        renamed = []
        for line in lines:
            alert = json.loads(line)
            alert["stock"] = f"{alert['stock']}_{copy}"
            alert["id"] += copy * 10**15
            for point in alert["datapoints"]:
                if "id" in point:
                    point["id"] += copy * 10**15
            renamed.append(json.dumps(alert))
        if one_per_file:
            for number, text in enumerate(renamed):
                (folder / f"{copy:03d}_{number:03d}.json").write_text(text)
        else:
            (folder / f"copy-{copy:03d}.jsonl").write_text("\n".join(renamed) + "\n")
    return folder


@pytest.fixture(scope="session")
def sample_copies() -> Callable[..., Path]:
    """`copies_of_sample`: many distinct objects made from the sample alerts."""
    return copies_of_sample
