from __future__ import annotations

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
