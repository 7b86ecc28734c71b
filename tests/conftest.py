from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ampel_core.testing import renamed_copies

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
    return renamed_copies(DATA / "ztf_sample.jsonl", folder, copies, one_per_file)


@pytest.fixture(scope="session")
def sample_copies() -> Callable[..., Path]:
    """`copies_of_sample`: many distinct objects made from the sample alerts."""
    return copies_of_sample
