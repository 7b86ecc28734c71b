"""Offline data files: search path, clear errors for missing files, no download ever, and model files
in the trace."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ampel_core.provenance import code_digest, make_trace, resource_digests
from ampel_core.testing import run_unit
from ampel_core.units import build_unit
from ampel_sncosmo.datafiles import SHIPPED_DATA_DIR, DataFileMissing, load_bandpass, load_source, search_path
from ampel_sncosmo.fit import T2SNCosmoFit

pytestmark = pytest.mark.usefixtures("no_sncosmo_env")

SALT2 = "models/salt2/salt2-4"
SALT2_FILES = ["salt2_color_correction.dat", "salt2_color_dispersion.dat", "salt2_lc_dispersion_scaling.dat",
               "salt2_lc_relative_covariance_01.dat", "salt2_lc_relative_variance_0.dat",
               "salt2_lc_relative_variance_1.dat", "salt2_template_0.dat", "salt2_template_1.dat"]


def trace_id(unit: T2SNCosmoFit) -> str:
    return make_trace("T2SNCosmoFit", "ampel-plugin-sncosmo", "0.1.0", code_digest(T2SNCosmoFit),
                      resource_digests(unit.resources()), unit.model_dump(mode="json")).id


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A data folder holding a writable copy of the shipped SALT2 2.4 model."""
    shutil.copytree(SHIPPED_DATA_DIR / SALT2, tmp_path / "sncosmo" / SALT2)
    for file in (tmp_path / "sncosmo" / SALT2).iterdir():
        file.chmod(0o644)
    return tmp_path / "sncosmo"


def test_the_model_files_sncosmo_reads_are_resources():
    resources = build_unit(T2SNCosmoFit, {"bands": ["ztfg", "ztfr"]}).resources()
    assert sorted(resources) == ["bandpasses/ztf/P48_R.dat", "bandpasses/ztf/P48_g.dat",
                                 *(f"{SALT2}/{name}" for name in SALT2_FILES)]


def test_changing_a_model_file_changes_the_trace_id(model_copy, example_datapoints):
    unit = build_unit(T2SNCosmoFit, {"data_dir": str(model_copy), "redshift": {"kind": "fit", "range": [0.3, 0.7]}})
    assert Path(unit.resources()[f"{SALT2}/salt2_template_0.dat"]).is_relative_to(model_copy)
    before = trace_id(unit)
    assert trace_id(build_unit(T2SNCosmoFit, unit.model_dump())) == before  # stable
    fit_before = run_unit(unit, example_datapoints)

    # one byte of the colour law: the 4th coefficient's last digit
    path = model_copy / SALT2 / "salt2_color_correction.dat"
    text = path.read_text()
    last_digit = text.rstrip()[-1]
    path.write_text(text.rstrip()[:-1] + str((int(last_digit) + 1) % 10) + "\n")

    assert trace_id(unit) != before
    fit_after = run_unit(unit, example_datapoints)  # the cached model is read again: it changed on disk
    assert fit_after["parameters"] != fit_before["parameters"]


def test_same_files_elsewhere_give_the_same_trace_apart_from_the_data_dir_setting(model_copy):
    default = build_unit(T2SNCosmoFit, {})
    copied = build_unit(T2SNCosmoFit, {"data_dir": str(model_copy)})
    assert resource_digests(default.resources()) == resource_digests(copied.resources())


def test_a_missing_model_file_names_the_file_and_how_to_provide_it(tmp_path):
    unit = build_unit(T2SNCosmoFit, {"source": "salt3", "source_version": "2.0", "data_dir": str(tmp_path)})
    with pytest.raises(DataFileMissing) as error:
        unit.resources()
    message = str(error.value)
    assert "'models/salt3/salt3-f22'" in message and "source 'salt3' version '2.0'" in message
    assert f"{tmp_path} (data_dir)" in message and "SNCOSMO_DATA_DIR" in message
    assert "https://sncosmo.github.io/data/models/salt3/salt3-f22.tar.gz" in message
    assert isinstance(error.value, FileNotFoundError)  # the CLI reports it as a user error


def test_a_missing_file_inside_a_model_folder_is_named(model_copy):
    (model_copy / SALT2 / "salt2_template_1.dat").unlink()
    unit = build_unit(T2SNCosmoFit, {"data_dir": str(model_copy)})
    with pytest.raises(DataFileMissing, match=r"salt2-4/salt2_template_1.dat for source .salt2. version .2.4. is missing"):
        unit.resources()


def test_a_missing_bandpass_file_is_named():
    with pytest.raises(DataFileMissing, match=r"'bandpasses/des/.*' for bandpass 'desg'"):
        build_unit(T2SNCosmoFit, {"bands": ["ztfg", "desg"]}).resources()


def test_unknown_version_lists_the_known_ones():
    with pytest.raises(LookupError, match=r"no source 'salt2' version '9.9'; its versions are 2.0, 2.4, B22, T21, T23"):
        build_unit(T2SNCosmoFit, {"source_version": "9.9"}).resources()


def test_data_dir_must_exist(tmp_path):
    with pytest.raises(NotADirectoryError, match="data_dir"):
        build_unit(T2SNCosmoFit, {"data_dir": str(tmp_path / "absent")}).resources()


def test_search_order_is_data_dir_then_environment_then_shipped(model_copy, tmp_path, monkeypatch):
    environment = tmp_path / "env"
    shutil.copytree(SHIPPED_DATA_DIR / "bandpasses/ztf", environment / "bandpasses/ztf")
    monkeypatch.setenv("SNCOSMO_DATA_DIR", str(environment))
    folders = search_path(model_copy)
    assert [label for label, _ in folders] == ["data_dir", "SNCOSMO_DATA_DIR", "shipped with ampel-plugin-sncosmo"]

    files = build_unit(T2SNCosmoFit, {"data_dir": str(model_copy), "bands": ["ztfg", "lsstg"]}).resources()
    assert files[f"{SALT2}/salt2_template_0.dat"].is_relative_to(model_copy)
    assert files["bandpasses/ztf/P48_g.dat"].is_relative_to(environment)
    assert files["bandpasses/lsst/total_g.dat"].is_relative_to(SHIPPED_DATA_DIR)


def test_nothing_is_ever_downloaded(monkeypatch, tmp_path, example_datapoints):
    import sncosmo.utils

    def no_network(*args, **kwargs):
        raise AssertionError(f"download attempted: {args}")

    for name in ("download_file", "download_dir", "_download_file"):
        monkeypatch.setattr(sncosmo.utils, name, no_network)
    monkeypatch.setattr(sncosmo.utils.DataMirror, "_fetch_redirects", no_network)

    result = run_unit(T2SNCosmoFit, example_datapoints, redshift={"kind": "fit", "range": [0.3, 0.7]},
                      data_dir=str(tmp_path))
    assert result["success"]
    with pytest.raises(DataFileMissing):
        load_source("salt2", "T23", search_path(tmp_path))
    with pytest.raises(DataFileMissing):
        load_bandpass("desr", search_path(tmp_path))


def test_loaded_models_are_cached_per_process():
    folders = search_path()
    assert load_source("salt2", "2.4", folders) is load_source("salt2", "2.4", folders)
    assert load_bandpass("ztfg", folders) is load_bandpass("ztfg", folders)


def test_salt3_from_the_shared_data_folder(shared_data, rhu_datapoints):
    config = {"source": "salt3", "source_version": "2.0", "data_dir": str(shared_data / "sncosmo"),
              "redshift": {"kind": "fixed", "value": 0.0035}, "bounds": {"x1": [-5, 5], "c": [-0.5, 1.0]}}
    unit = build_unit(T2SNCosmoFit, config)
    assert sorted(name for name in unit.resources() if name.startswith("models/")) == [
        f"models/salt3/salt3-f22/salt3_{name}.dat" for name in
        ("color_correction", "color_dispersion", "lc_covariance_01", "lc_variance_0", "lc_variance_1",
         "template_0", "template_1")]
    result = run_unit(unit, rhu_datapoints)
    assert result["success"] and result["source"] == "salt3" and result["source_version"] == "2.0"
    assert result["parameters"]["x1"] < 0  # an 86G-like, fast-declining SN Ia


def test_the_shipped_files_are_those_the_data_readme_lists():
    import hashlib
    import re

    listed = dict((path, digest) for digest, path in
                  re.findall(r"^([0-9a-f]{64})  (\S+)$", (SHIPPED_DATA_DIR / "README.md").read_text(), re.MULTILINE))
    shipped = {p.relative_to(SHIPPED_DATA_DIR).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in SHIPPED_DATA_DIR.rglob("*") if p.is_file() and p.name != "README.md"}
    assert shipped == listed
