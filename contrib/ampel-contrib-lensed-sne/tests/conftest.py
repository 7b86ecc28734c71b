"""Fixtures of this package's tests: a registry that knows exactly the core's built-ins and this
package (whatever else is installed), and the bundled sample alerts."""

from pathlib import Path

import pytest
from ampel_core.models import Alert
from ampel_core.registry import Registry
from ampel_core.unit_check import read_alerts

from ampel_contrib_lensed_sne import plugin

DATA = Path(__file__).parent / "data"


@pytest.fixture
def registry(register_plugin) -> Registry:
    """This package registered through its plugin module, as the ``ampel`` entry point would; the
    ``register_plugin`` fixture of ampel_core.testing blocks discovery of other installed plugins."""
    return register_plugin(plugin, "ampel-contrib-lensed-sne")


@pytest.fixture
def sample_alerts(registry: Registry) -> list[Alert]:
    """Real ZTF alerts, in the order they were issued (see tests/data/README.md)."""
    return read_alerts(DATA / "sample_alerts.jsonl", format="json", registry=registry)


@pytest.fixture
def sn2021rhu(sample_alerts: list[Alert]) -> list[Alert]:
    """The six alerts of SN 2021rhu (ZTF21abiuvdk), from its first detection to its decline."""
    return [alert for alert in sample_alerts if alert.stock_name == "ZTF21abiuvdk"]
