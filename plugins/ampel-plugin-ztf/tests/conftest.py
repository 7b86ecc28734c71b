from __future__ import annotations

import csv
from pathlib import Path

import pluggy
import pytest

import ampel_ztf.plugin
from ampel_core.registry import Registry, get_registry

SAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "data" / "ztf"


def avro_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.avro"))


@pytest.fixture(scope="session")
def sample_files() -> list[Path]:
    """The 59 Avro files (62 real alerts) shipped in docs/examples/data/ztf."""
    return avro_files(SAMPLE)


@pytest.fixture(scope="session")
def shared_alert_files(shared_data: Path) -> list[Path]:
    """Every readable ZTF Avro file of ../shared/data (461 alerts in 311 files)."""
    return avro_files(shared_data / "ztf_alerts")


@pytest.fixture(scope="session")
def manifest(shared_data: Path) -> dict[tuple[str, int], dict[str, str]]:
    """../shared/data/ztf_alerts/MANIFEST.csv by (path below shared/data, record index)."""
    with open(shared_data / "ztf_alerts" / "MANIFEST.csv") as handle:
        return {(row["file"], int(row["record"])): row for row in csv.DictReader(handle)}


@pytest.fixture
def ztf_registry(register_plugin, ampel_manager: pluggy.PluginManager) -> Registry:
    """The core's built-ins plus this plugin, with discovery blocked (other plugins stay out)."""
    register_plugin(ampel_ztf.plugin, "ampel-plugin-ztf")
    return get_registry(ampel_manager)
