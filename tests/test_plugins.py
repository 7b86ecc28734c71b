"""Plugin discovery, the generated config and its error cases, and the listing commands.

The tiny plugin under tests/fixtures is pip-installed into the test environment (a real
distribution found through its entry point). The error cases use distributions made of a
``.dist-info`` folder on ``PYTHONPATH`` in a subprocess, so a broken plugin never leaks into other
tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from ampel_core.hookspecs import hookimpl
from ampel_core.plugins import PluginError, new_manager, register
from ampel_core.registry import RegistryError, build_config, check_config, get_registry

FIXTURE = Path(__file__).parent / "fixtures" / "ampel-plugin-tiny"


def ampel(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ampel_core.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def tiny_plugin() -> Path:
    """ampel-plugin-tiny installed into this environment for the module's tests, then removed."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-deps", str(FIXTURE)], check=True, capture_output=True, text=True)
    yield FIXTURE
    subprocess.run([*pip, "uninstall", "-y", "ampel-plugin-tiny"], check=True, capture_output=True)


def test_installed_plugin_is_discovered_through_its_entry_point(tiny_plugin: Path, tmp_path: Path) -> None:
    listing = ampel("units", "--tier", "2", "--format", "csv")
    assert listing.returncode == 0, listing.stderr
    assert "T2,state,T2TinyPeak,ampel-plugin-tiny,0.3.1" in listing.stdout.splitlines()
    assert "BrightFilter" not in listing.stdout  # tier 0
    built = ampel("config", "build", "-o", str(tmp_path / "conf.yaml"))
    assert built.returncode == 0, built.stderr
    config = yaml.safe_load((tmp_path / "conf.yaml").read_text())
    unit = config["units"]["T2TinyPeak"]
    assert unit["distribution"] == "ampel-plugin-tiny" and unit["version"] == "0.3.1" and unit["tier"] == 2
    assert unit["import_path"] == "ampel_tiny.units:T2TinyPeak" and len(unit["code_digest"]) == 64
    assert config["units"]["BrightFilter"]["config_schema"]["properties"]["max_mag"]["default"] == 18.0
    assert config["plugins"]["ampel-plugin-tiny"] == {"version": "0.3.1", "requires_core": "<0.2,>=0.1"}
    assert config["channels"]["TINY_BRIGHT"]["filter"]["unit"] == "BrightFilter"
    assert config["aliases"]["tiny_threshold"] == 18.0
    # deterministic: a second build is byte-identical
    ampel("config", "build", "-o", str(tmp_path / "again.yaml"))
    assert (tmp_path / "again.yaml").read_bytes() == (tmp_path / "conf.yaml").read_bytes()
    assert ampel("config", "check", str(tmp_path / "conf.yaml")).returncode == 0
    requirements = ampel("plugins", "--requirements")
    assert "ampel-plugin-tiny==0.3.1" in requirements.stdout.splitlines()
    shown = ampel("unit", "show", "BrightFilter")
    assert "max_mag: number = 18.0" in shown.stdout and "ampel-plugin-tiny 0.3.1" in shown.stdout


def test_config_check_names_what_changed(tiny_plugin: Path, tmp_path: Path) -> None:
    path = tmp_path / "conf.yaml"
    assert ampel("config", "build", "-o", str(path)).returncode == 0
    config = yaml.safe_load(path.read_text())
    config["units"]["T2TinyPeak"]["code_digest"] = "0" * 64
    config["plugins"]["ampel-plugin-tiny"]["version"] = "0.3.0"
    del config["units"]["BrightFilter"]
    path.write_text(yaml.safe_dump(config))
    checked = ampel("config", "check", str(path))
    assert checked.returncode == 1
    assert "plugin ampel-plugin-tiny: version 0.3.0 -> 0.3.1" in checked.stdout
    assert "unit T2TinyPeak (ampel-plugin-tiny): code changed" in checked.stdout
    assert "unit BrightFilter (ampel-plugin-tiny): added" in checked.stdout
    assert "ampel config build" in checked.stdout


def fake_distribution(root: Path, name: str, version: str, requires: str, modules: dict[str, str]) -> dict[str, str]:
    """A distribution made of a .dist-info folder and modules under ``root`` (for PYTHONPATH)."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Dist: {requires}\n")
    package = next(iter(modules)).split(".")[0]
    (info / "entry_points.txt").write_text(f"[ampel]\nplugin = {package}.plugin\n")
    (root / package).mkdir(exist_ok=True)
    (root / package / "__init__.py").write_text("")
    for module, source in modules.items():
        (root / Path(*module.split("."))).with_suffix(".py").write_text(textwrap.dedent(source))
    return {"PYTHONPATH": str(root)}


PLUGIN_HEAD = "from ampel_core.hookspecs import hookimpl\n"


def test_core_range_that_excludes_this_core_is_refused(tmp_path: Path) -> None:
    env = fake_distribution(tmp_path, "ampel-plugin-future", "2.0", "ampel-core>=9.0", {
        "future_plugin.plugin": PLUGIN_HEAD + "@hookimpl\ndef ampel_units():\n    return []\n"})
    out = tmp_path / "conf.yaml"
    result = ampel("config", "build", "-o", str(out), env=env)
    assert result.returncode == 2 and not out.exists()
    assert ("error: plugin ampel-plugin-future 2.0 requires ampel-core>=9.0, but ampel-core 0.1.0 is installed: "
            "upgrade ampel-plugin-future or install a matching ampel-core") in result.stderr


def test_hook_that_does_not_match_its_spec_is_refused(tmp_path: Path) -> None:
    env = fake_distribution(tmp_path, "ampel-plugin-odd", "0.1", "ampel-core>=0.1", {
        "odd_plugin.plugin": PLUGIN_HEAD + "@hookimpl\ndef ampel_units(tier):\n    return []\n"})
    out = tmp_path / "conf.yaml"
    result = ampel("config", "build", "-o", str(out), env=env)
    assert result.returncode == 2 and not out.exists()
    assert "error: plugin 'ampel-plugin-odd'" in result.stderr
    assert "ampel_units" in result.stderr and "tier" in result.stderr


def test_plugin_module_that_fails_to_load_names_distribution_and_entry_point(tmp_path: Path) -> None:
    env = fake_distribution(tmp_path, "ampel-plugin-crash", "0.1", "ampel-core>=0.1", {
        "crash_plugin.plugin": "raise RuntimeError('boom at import')\n"})
    result = ampel("plugins", env=env)
    assert result.returncode == 2
    assert ("error: plugin ampel-plugin-crash 0.1: entry point 'plugin = crash_plugin.plugin' failed to load: "
            "RuntimeError: boom at import") in result.stderr


def test_unit_that_fails_to_import_stops_the_build_unless_skipped(tmp_path: Path) -> None:
    env = fake_distribution(tmp_path, "ampel-plugin-broken", "0.2", "ampel-core>=0.1", {
        "broken_plugin.plugin": PLUGIN_HEAD + "@hookimpl\ndef ampel_units():\n    return ['broken_plugin.units:T2Broken']\n",
        "broken_plugin.units": "import not_a_module_anywhere\n"})
    out = tmp_path / "conf.yaml"
    result = ampel("config", "build", "-o", str(out), env=env)
    assert result.returncode == 2 and not out.exists()
    message = ("error: plugin ampel-plugin-broken 0.2: 'T2Broken' (broken_plugin.units:T2Broken) failed to import: "
               "ModuleNotFoundError: No module named 'not_a_module_anywhere'")
    assert message in result.stderr
    skipped = ampel("config", "build", "-o", str(out), "--skip-broken", env=env)
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped: plugin ampel-plugin-broken 0.2: 'T2Broken'" in skipped.stderr
    config = yaml.safe_load(out.read_text())
    assert "T2Broken" not in config["units"] and "T2LightCurveSummary" in config["units"]


def test_two_units_of_one_name_from_two_distributions_are_refused() -> None:
    manager = new_manager()
    for name in ("ampel-plugin-a", "ampel-plugin-b"):
        module = types.SimpleNamespace(ampel_units=hookimpl(lambda: ["somewhere:T2Same"]))
        register(manager, module, name)
    with pytest.raises(RegistryError) as error:
        get_registry(manager)
    assert str(error.value) == ("'T2Same' from ampel-plugin-a 0+local and ampel-plugin-b 0+local: two units with one "
                                "name; rename one or uninstall one")


def test_hook_implementation_with_unknown_name_is_refused() -> None:
    manager = new_manager()
    module = types.SimpleNamespace(ampel_unitz=hookimpl(lambda: []))
    with pytest.raises(PluginError, match="ampel_unitz"):
        register(manager, module, "ampel-plugin-typo")


def test_check_config_reports_plugin_added_and_removed(ampel_manager) -> None:
    built, _ = build_config(get_registry(ampel_manager))
    current = {**built, "plugins": {**built["plugins"], "ampel-plugin-new": {"version": "1.0", "requires_core": ""}}}
    assert check_config(built, current) == ["plugin ampel-plugin-new 1.0: installed since the build"]
    assert check_config(current, built) == ["plugin ampel-plugin-new 1.0: no longer installed"]
    assert check_config(built, built) == []


def test_a_job_refuses_to_run_against_a_stale_config(tiny_plugin: Path, tmp_path: Path) -> None:
    config = tmp_path / "conf.yaml"
    assert ampel("config", "build", "-o", str(config)).returncode == 0
    alerts = Path(__file__).parent / "data" / "ztf_sample.jsonl"
    job = tmp_path / "job.yml"
    job.write_text(yaml.safe_dump({"store": f"sqlite:///{tmp_path / 's.db'}", "channels": [{"name": "A"}], "tasks": [
        {"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}}, "format": {"name": "json"}}]}))
    assert ampel("job", str(job), "--config", str(config), "--no-progress").returncode == 0
    stale = yaml.safe_load(config.read_text())
    stale["plugins"]["ampel-plugin-tiny"]["version"] = "0.2.0"
    config.write_text(yaml.safe_dump(stale))
    refused = ampel("job", str(job), "--config", str(config), "--no-progress")
    assert refused.returncode == 2
    assert (f"error: the config {config} is stale (plugin ampel-plugin-tiny: version 0.2.0 -> 0.3.1); rebuild it "
            f"with `ampel config build -o {config}`") in refused.stderr


class Fragments:
    """A plugin contributing a channel and an alias."""

    def __init__(self, channels: dict[str, Any], aliases: dict[str, Any]) -> None:
        self.fragment = {"channels": channels, "aliases": aliases}

    @hookimpl
    def ampel_config_fragments(self) -> dict[str, Any]:
        return self.fragment


def test_config_fragments_give_jobs_installed_channels_and_parameters(register_plugin: Any, tmp_path: Path) -> None:
    from ampel_core.drivers import run_job
    from ampel_core.errors import AmpelError
    from ampel_core.jobs import load_job
    from ampel_core.registry import RegistryError

    channel = {"filter": {"unit": "MinDetectionsFilter", "config": {"min_detections": "${min_detections}"}}}
    register_plugin(Fragments({"THREE": channel}, {"min_detections": 3}), "ampel-plugin-fragments")
    alerts = Path(__file__).parent / "data" / "ztf_sample.jsonl"
    document = {"store": f"sqlite:///{tmp_path / 's.db'}", "channels": ["THREE", {"name": "ALL"}],
                "tasks": [{"tier": 0, "source": {"name": "files", "config": {"paths": [str(alerts)]}},
                           "format": {"name": "json"}}]}
    job = load_job(document)
    assert job.channels[0].name == "THREE" and job.channels[0].filter.config == {"min_detections": 3}
    assert load_job(document, {"min_detections": 5}).channels[0].filter.config == {"min_detections": 5}
    summary = run_job(job)
    assert summary.accepted["ALL"] == summary.alerts and 0 < summary.accepted["THREE"] < summary.alerts
    with pytest.raises(AmpelError, match=r"channel 'NOPE' is not an installed channel \(installed: THREE\)"):
        load_job({**document, "channels": ["NOPE"]})
    with pytest.raises(RegistryError, match=r"alias 'min_detections' from ampel-plugin-fragments and other-plugin differ"):
        register_plugin(Fragments({}, {"min_detections": 4}), "other-plugin")
