"""The plugin module: AMPEL finds every unit of this package, with its tier, and builds a config."""

from ampel_core.registry import Registry, build_config

DISTRIBUTION = "ampel-contrib-lensed-sne"

UNITS = {
    "LensedSNFilter": 0,
    "T2LensedSNColours": 2,
    "T3LensedSNReport": 3,
}


def test_the_plugin_provides_its_units(registry: Registry) -> None:
    provided = {name for name, unit in registry.units.items() if unit.distribution == DISTRIBUTION}
    assert provided == set(UNITS)


def test_the_config_lists_each_unit_with_tier_schema_and_code_digest(registry: Registry) -> None:
    config, skipped = build_config(registry)
    assert skipped == []
    for name, tier in UNITS.items():
        entry = config["units"][name]
        assert entry["distribution"] == DISTRIBUTION and entry["tier"] == tier
        assert len(entry["code_digest"]) == 64 and entry["config_schema"]["type"] == "object"
