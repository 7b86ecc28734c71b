"""The unit-package template (cookiecutter/): render it, install the result, and use it as a unit
author would: `ampel config build`, its own tests, its example job and `ampel unit check`.

The generated distribution is installed into this environment with pip and uninstalled when the
module's tests are done, so it never leaks into other tests. Everything that needs it installed
runs in a subprocess (a fresh interpreter sees the new entry point).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

TEMPLATE = Path(__file__).parent.parent / "cookiecutter"
DISTRIBUTION, PACKAGE, VERSION = "ampel-plugin-cctest", "ampel_plugin_cctest", "0.3.1"
UNITS = {"CctestFilter": 0, "T2CctestRise": 2, "T3CctestReport": 3}


def render(output: Path, **answers: str) -> Path:
    """Render the template without questions; return the generated package's folder."""
    context = {"distribution_name": DISTRIBUTION, "version": VERSION, "author_name": "A. Tester", **answers}
    return Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(output), extra_context=context))


def run(*command: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})


def ampel(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "ampel_core.cli", *args, cwd=cwd)


def pip_install_arguments() -> list[str]:
    """Build without isolation (fast, offline) when this environment can build wheels itself:
    setuptools 70.1 has bdist_wheel built in, older setuptools needs the `wheel` package."""
    from importlib.metadata import version

    from packaging.version import Version

    if Version(version("setuptools")) >= Version("70.1") or importlib.util.find_spec("wheel"):
        return ["--no-build-isolation"]
    return []


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The full template rendered and pip-installed (not editable) for this module's tests."""
    package = render(tmp_path_factory.mktemp("rendered"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    try:
        done = run(*pip, "install", "--no-deps", *pip_install_arguments(), str(package))
        assert done.returncode == 0, f"pip install of the generated package failed:\n{done.stdout}\n{done.stderr}"
        yield package
    finally:
        run(*pip, "uninstall", "-y", DISTRIBUTION)


def test_the_template_renders_a_complete_package(tmp_path: Path) -> None:
    package = render(tmp_path)
    assert package.name == DISTRIBUTION
    expected = ["pyproject.toml", "README.md", ".gitignore", ".github/workflows/ci.yml", ".github/workflows/release.yml",
                "jobs/example.yaml", "tests/conftest.py", "tests/data/sample_alerts.jsonl", "tests/data/README.md",
                f"src/{PACKAGE}/plugin.py", f"src/{PACKAGE}/t0_filter.py", f"src/{PACKAGE}/t2_rise.py",
                f"src/{PACKAGE}/t3_report.py", "tests/test_t0_filter.py", "tests/test_t2_rise.py",
                "tests/test_t3_report.py", "tests/test_job.py", "tests/test_plugin.py"]
    assert [path for path in expected if not (package / path).is_file()] == []
    pyproject = (package / "pyproject.toml").read_text()
    assert f'name = "{DISTRIBUTION}"' in pyproject and f'version = "{VERSION}"' in pyproject
    assert '"ampel-core>=0.1,<0.2"' in pyproject
    assert f'[project.entry-points.ampel]\n{PACKAGE} = "{PACKAGE}.plugin"' in pyproject
    # sample alerts are copied verbatim from the core's real ZTF sample, with its origin note
    core_sample = set((Path(__file__).parent / "data" / "ztf_sample.jsonl").read_text().splitlines())
    lines = (package / "tests/data/sample_alerts.jsonl").read_text().splitlines()
    assert len(lines) == 10 and set(lines) <= core_sample
    assert "Pitt-Google-Broker @ d1e5a6c6f3cf" in (package / "tests/data/README.md").read_text()
    # the CI workflow keeps GitHub's own ${{ }} expressions
    assert "${{ matrix.python-version }}" in (package / ".github/workflows/ci.yml").read_text()
    job = yaml.safe_load((package / "jobs/example.yaml").read_text())
    assert job["channels"][0]["filter"]["unit"] == "CctestFilter"
    assert job["tasks"][0]["format"] == {"name": "json"} and job["store"] == "sqlite:///example.db"


@pytest.mark.parametrize(("answers", "kept"), [
    ({"include_t0": "yes", "include_t2": "no", "include_t3": "no"}, ["t0_filter"]),
    ({"include_t0": "no", "include_t2": "yes", "include_t3": "no"}, ["t2_rise"]),
    ({"include_t0": "no", "include_t2": "no", "include_t3": "no"}, []),
])
def test_unit_kinds_left_out_are_removed_and_the_rest_still_works(tmp_path: Path, answers: dict[str, str],
                                                                  kept: list[str]) -> None:
    package = render(tmp_path, **answers)
    modules = sorted(path.stem for path in (package / "src" / PACKAGE).glob("t*.py"))
    assert modules == kept
    assert sorted(path.stem.removeprefix("test_") for path in (package / "tests").glob("test_t*.py")) == kept
    plugin = (package / "src" / PACKAGE / "plugin.py").read_text()
    assert ("t0_filter:CctestFilter" in plugin) == ("t0_filter" in kept)
    job = yaml.safe_load((package / "jobs/example.yaml").read_text())
    if "t0_filter" not in kept:
        assert job["channels"][0]["filter"]["unit"] == "AcceptAll"  # a built-in stands in
    # its tests pass without installing it: they register the plugin module themselves
    tests = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package,
                env={"PYTHONPATH": str(package / "src")})
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "skipped" not in tests.stdout


def test_bad_names_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(FailedHookException):
        render(tmp_path, distribution_name="My Plugin")
    assert list(tmp_path.iterdir()) == []


def test_config_build_lists_the_installed_units_with_the_package_version(installed: Path, tmp_path: Path) -> None:
    built = ampel("config", "build", "-o", str(tmp_path / "conf.yaml"), "--skip-broken")
    assert built.returncode == 0, built.stderr
    assert DISTRIBUTION not in built.stderr  # none of its units was skipped
    config = yaml.safe_load((tmp_path / "conf.yaml").read_text())
    assert config["plugins"][DISTRIBUTION] == {"version": VERSION, "requires_core": "<0.2,>=0.1"}
    for name, tier in UNITS.items():
        unit = config["units"][name]
        assert (unit["distribution"], unit["version"], unit["tier"]) == (DISTRIBUTION, VERSION, tier)
        assert len(unit["code_digest"]) == 64
    assert config["units"]["T2CctestRise"]["config_schema"]["properties"]["window"]["default"] == 10.0
    listing = ampel("units", "--tier", "2", "--format", "csv")
    assert listing.returncode == 0 and f"T2,state,T2CctestRise,{DISTRIBUTION},{VERSION}" in listing.stdout.splitlines()


def test_the_generated_package_passes_its_own_tests(installed: Path) -> None:
    tests = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=installed)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "13 passed" in tests.stdout and "skipped" not in tests.stdout


def test_the_example_job_runs(installed: Path, tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.json"
    job = ampel("job", "jobs/example.yaml", "--no-progress", "--summary-json", str(summary_file),
                "--store", f"sqlite:///{tmp_path / 'example.db'}", "--set", f"report={tmp_path / 'report.json'}",
                cwd=installed)
    assert job.returncode == 0, job.stderr
    summary = json.loads(summary_file.read_text())
    assert summary["status"] == "ok" and summary["alerts"] == 10 and summary["quarantined"] == 0
    assert summary["accepted"] == {"CCTEST_EXAMPLE": 7} and summary["rejected"] == {"CCTEST_EXAMPLE": 3}
    assert (summary["tickets_done"], summary["tickets_failed"]) == (7, 0)
    assert (summary["reports"], summary["reports_failed"]) == (1, 0)
    rows = json.loads((tmp_path / "report.json").read_text())["rows"]
    assert [row["stock"] for row in rows] == ["ZTF21abiuvdk", "ZTF18aamyaaj", "ZTF18abefmzp"]
    assert rows[0]["trend"] == "fading" and rows[0]["peak_mag"] == pytest.approx(12.4256, abs=1e-4)


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_check_passes_for_each_generated_unit(installed: Path, unit: str) -> None:
    check = ampel("unit", "check", unit, "--alerts", "tests/data/sample_alerts.jsonl", cwd=installed)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{unit} (T{UNITS[unit]}" in check.stdout and f"{DISTRIBUTION} {VERSION}" in check.stdout
    assert "p95" in check.stdout and "ok: no exceptions" in check.stdout
