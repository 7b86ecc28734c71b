"""The plugin's registration: hooks, generated config, installed entry point, import cost."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from ampel_core.registry import Registry, build_config
from ampel_lsst import avro_schemas
from ampel_lsst.format import ElasticcAlertFormat, LSSTAlertFormat


def test_hooks_register_formats_and_units(lsst_registry: Registry) -> None:
    assert lsst_registry.component("formats", "lsst") is LSSTAlertFormat
    assert lsst_registry.component("formats", "elasticc") is ElasticcAlertFormat
    config, skipped = build_config(lsst_registry)
    assert not skipped
    for name, tier in (("SimpleLSSTFilter", 0), ("LSSTPhotometryCombiner", 1)):
        entry = config["units"][name]
        assert (entry["tier"], entry["distribution"]) == (tier, "ampel-plugin-lsst")
    assert "min_snr" in config["units"]["SimpleLSSTFilter"]["config_schema"]["properties"]
    assert config["alert_formats"]["elasticc"]["import_path"] == "ampel_lsst.format:ElasticcAlertFormat"


def test_installed_distribution_declares_the_entry_point_and_core_range() -> None:
    dist = metadata.distribution("ampel-plugin-lsst")
    assert [ep.value for ep in dist.entry_points if ep.group == "ampel"] == ["ampel_lsst.plugin"]
    assert any(r.replace(" ", "").startswith("ampel-core") and "<0.2" in r for r in dist.requires or ())


def test_plugin_and_unit_modules_are_import_light() -> None:
    code = ("import sys, ampel_lsst.plugin, ampel_lsst.filters, ampel_lsst.combiners; "
            "print(sorted(m for m in ('astropy', 'fastavro', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_shipped_schema_loads() -> None:
    for name in avro_schemas.SHIPPED_SCHEMAS:
        assert avro_schemas.load(name)["name"] == f"{name}.alert"
    assert set(avro_schemas.RUBIN_REGISTRY_IDS.values()) == set(avro_schemas.LSST_SCHEMAS)
