"""T2SNCosmoFit on real light curves: recovery of a simulation's truth, equality with a direct
sncosmo.fit_lc, the reference values, redshift sources, data selection and the result contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ampel_core.models import DataPoint
from ampel_core.provenance import canonical_json
from ampel_core.testing import run_unit, state_view
from ampel_core.units import UnitConfigError, UnitRef, build_unit
from ampel_sncosmo.datafiles import SHIPPED_DATA_DIR
from ampel_sncosmo.fit import T2SNCosmoFit

pytestmark = pytest.mark.usefixtures("no_sncosmo_env")

RHU_CONFIG = {"redshift": {"kind": "fixed", "value": 0.0035}, "bounds": {"x1": [-5, 5], "c": [-0.5, 1.0]}}
EXAMPLE_CONFIG = {"redshift": {"kind": "fit", "range": [0.3, 0.7]}}
EXAMPLE_FIXED_Z = {"redshift": {"kind": "fixed", "value": 0.5}}
TRUTH = {"z": 0.5, "t0": 55100.0, "x0": 1.20482820761e-05, "x1": 0.5, "c": 0.2}


def test_example_data_recovers_the_simulation_truth_within_two_sigma(example_datapoints):
    result = run_unit(T2SNCosmoFit, example_datapoints, **EXAMPLE_CONFIG)

    assert result["success"] and not result["skipped"]
    assert result["fit_parameters"] == ["z", "t0", "x0", "x1", "c"]
    for name, truth in TRUTH.items():
        pull = (result["parameters"][name] - truth) / result["errors"][name]
        assert abs(pull) < 2, f"{name}: {result['parameters'][name]} is {pull:.1f} sigma from the truth {truth}"
    assert result["redshift"] == {"origin": "fit", "range": [0.3, 0.7], "value": result["parameters"]["z"]}
    assert result["npoints"] == 40 and result["points_per_band"] == {"sdssg": 10, "sdssi": 10, "sdssr": 10, "sdssz": 10}
    assert result["data_window"] == {"first": 55070.0, "last": 55150.0}


def test_example_data_matches_the_reference_fit(example_datapoints, reference_fits):
    reference = reference_fits["sncosmo.load_example_data()"]
    result = run_unit(T2SNCosmoFit, example_datapoints, **EXAMPLE_CONFIG)

    assert result["parameters"] == pytest.approx(reference["params"], rel=1e-6)
    assert result["errors"] == pytest.approx(reference["errors"], rel=1e-4)
    assert result["chi2"] == pytest.approx(reference["chisq"], abs=0.01)
    assert result["ndof"] == reference["ndof"]


def test_sn2021rhu_equals_a_direct_fit_and_the_reference(rhu_datapoints, shared_data, reference_fits, direct_fit):
    assert len(rhu_datapoints) == 34
    result = run_unit(T2SNCosmoFit, rhu_datapoints, **RHU_CONFIG)
    direct, _ = direct_fit(rhu_datapoints, shared_data / "sncosmo", ["t0", "x0", "x1", "c"], z=0.0035,
                           bounds={"x1": (-5, 5), "c": (-0.5, 1.0)})

    assert result["success"] == direct.success
    assert result["message"] == direct.message
    assert result["parameters"] == pytest.approx(dict(zip(direct.param_names, direct.parameters, strict=True)), rel=1e-9)
    assert result["errors"] == pytest.approx(dict(direct.errors), rel=1e-9)
    assert result["covariance"]["names"] == list(direct.vparam_names)
    for row, direct_row in zip(result["covariance"]["matrix"], direct.covariance, strict=True):
        assert row == pytest.approx(list(direct_row), rel=1e-9)
    assert (result["chi2"], result["ndof"]) == (pytest.approx(direct.chisq, rel=1e-9), direct.ndof)

    reference = reference_fits["ZTF21abiuvdk"]
    assert result["parameters"] == pytest.approx(reference["params"], rel=1e-6)
    assert result["errors"] == pytest.approx(reference["errors"], rel=1e-4)
    assert result["chi2"] == pytest.approx(reference["chisq"], abs=0.01)
    assert result["ndof"] == reference["ndof"] == 30
    assert result["points_per_band"] == {"ztfg": 18, "ztfr": 16}
    assert result["redshift"] == {"origin": "fixed", "value": 0.0035}


def test_redshift_from_a_dependency_result(example_datapoints):
    config = {"redshift": {"kind": "dependency", "unit": "T2HostMatch", "key": "host.z", "config": {"radius": 10}}}
    unit = build_unit(T2SNCosmoFit, config)
    assert unit.dependencies() == [UnitRef("T2HostMatch", {"radius": 10})]
    state = state_view(example_datapoints)

    tied = unit.process(state, {"T2HostMatch": {"host": {"z": 0.5, "name": "host"}}})
    fixed = run_unit(T2SNCosmoFit, example_datapoints, **EXAMPLE_FIXED_Z)
    assert tied["success"] and tied["parameters"] == fixed["parameters"]
    assert tied["fit_parameters"] == ["t0", "x0", "x1", "c"]
    assert tied["redshift"] == {"origin": "dependency", "value": 0.5, "unit": "T2HostMatch", "key": "host.z"}

    for results in ({"T2HostMatch": {"host": None}}, {"T2HostMatch": {"host": {"z": -1}}}, {}):
        nothing = unit.process(state, results)
        assert nothing["skipped"] and not nothing["success"] and "no redshift" in nothing["message"]
        canonical_json(nothing)


def test_dependency_without_redshift_falls_back_to_a_fit_range(example_datapoints):
    unit = build_unit(T2SNCosmoFit, {"redshift": {"kind": "dependency", "unit": "T2HostMatch", "range": [0.3, 0.7]}})
    result = unit.process(state_view(example_datapoints), {"T2HostMatch": {"z": None}})
    assert result["success"] and result["fit_parameters"][0] == "z"
    assert result["redshift"]["origin"] == "fit" and result["redshift"]["dependency_value"] is None


def test_no_dependency_unless_the_redshift_comes_from_one():
    assert build_unit(T2SNCosmoFit, {}).dependencies() == []
    assert build_unit(T2SNCosmoFit, RHU_CONFIG).dependencies() == []


def test_too_few_points_or_bands_is_a_skipped_result_not_an_error(example_datapoints):
    few = run_unit(T2SNCosmoFit, example_datapoints[:3], **EXAMPLE_FIXED_Z)
    assert few["skipped"] and not few["success"] and "3 points < min_detections 5" in few["message"]
    assert few["npoints"] == 3 and few["parameters"] is None

    one_band = [dp for dp in example_datapoints if dp.band == "sdssr"]
    result = run_unit(T2SNCosmoFit, one_band, **EXAMPLE_FIXED_Z)
    assert result["skipped"] and "1 bands < min_bands 2" in result["message"]

    empty = run_unit(T2SNCosmoFit, [], **EXAMPLE_FIXED_Z)
    assert empty["skipped"] and empty["npoints"] == 0 and empty["data_window"] is None


def test_points_left_out_are_counted_by_reason(example_datapoints):
    times = sorted(dp.time for dp in example_datapoints)
    first, last = times[5], times[-5]
    config = {**EXAMPLE_FIXED_Z, "bands": ["sdssg", "sdssr", "sdssi", "sdssz"], "time_window": [first, last],
              "exclude_tags": ["forced"]}
    time = times[20]
    odd = [*example_datapoints,
           DataPoint(id=101, stock=1, time=time, band="ztfg", flux=1.0, flux_err=0.1),
           DataPoint(id=102, stock=1, time=time, band="sdssg", flux=None, flux_err=0.1, upper_limit=True),
           DataPoint(id=103, stock=1, time=time, band="sdssg", flux=1.0, flux_err=0.0),
           DataPoint(id=104, stock=1, time=time, band="sdssg", flux=1.0, flux_err=0.1, zpsys="vega"),
           DataPoint(id=105, stock=1, time=time, band="sdssg", flux=1.0, flux_err=0.1, tags=("ZTF", "forced"))]
    result = run_unit(T2SNCosmoFit, odd, **config)
    assert result["excluded"] == {"band_not_configured": 1, "invalid_flux": 1, "magsystem_not_configured": 1,
                                  "outside_time_window": 9, "excluded_tag": 1}
    assert result["success"] and result["npoints"] == 40 - 9
    assert result["data_window"] == {"first": first, "last": last}


def test_milky_way_dust_is_a_fixed_model_parameter(example_datapoints):
    plain = run_unit(T2SNCosmoFit, example_datapoints, **EXAMPLE_FIXED_Z)
    dusty = run_unit(T2SNCosmoFit, example_datapoints, **EXAMPLE_FIXED_Z, mwebv=0.1)
    assert dusty["parameters"]["mwebv"] == 0.1 and dusty["parameters"]["mwr_v"] == 3.1
    assert "mwebv" not in plain["parameters"] and dusty["mwebv"] == 0.1
    assert dusty["fit_parameters"] == ["t0", "x0", "x1", "c"]
    assert dusty["parameters"]["c"] < plain["parameters"]["c"] - 0.05  # the reddening is no longer put on the SN


def test_model_covariance_changes_the_fit(rhu_datapoints):
    result = run_unit(T2SNCosmoFit, rhu_datapoints, **RHU_CONFIG, modelcov=True)
    assert result["success"] and result["modelcov"] is True
    # ../shared/data/README.md §3: with modelcov x1 = -2.01 +- 0.08, c = 0.124 +- 0.035
    assert result["parameters"]["x1"] == pytest.approx(-2.01, abs=0.02)
    assert result["parameters"]["c"] == pytest.approx(0.124, abs=0.005)


def test_plot_on_request(example_datapoints, tmp_path):
    result = run_unit(T2SNCosmoFit, example_datapoints, **EXAMPLE_CONFIG, plot_dir=str(tmp_path / "plots"))
    state = state_view(example_datapoints)
    assert result["plot"] == str(tmp_path / "plots" / f"{state.id}.png")
    assert Path(result["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run_unit(T2SNCosmoFit, example_datapoints, **EXAMPLE_CONFIG)["plot"] is None


def test_other_sources_by_name_and_version(example_datapoints):
    result = run_unit(T2SNCosmoFit, example_datapoints, source="hsiao-subsampled", source_version="3.0",
                      redshift={"kind": "fixed", "value": 0.5}, bands=["sdssg", "sdssr", "sdssi", "sdssz"])
    assert result["success"] and result["fit_parameters"] == ["t0", "amplitude"]
    assert result["parameters"]["t0"] == pytest.approx(55100, abs=3)


@pytest.mark.parametrize(("config", "field"), [
    ({"bounds": {"z": [0, 1]}}, "redshift"),
    ({"fit_parameters": ["z", "t0"]}, "redshift"),
    ({"bounds": {"x1": [5, -5]}}, "bounds.x1"),
    ({"redshift": {"kind": "fit", "range": [-0.1, 0.2]}}, "range"),
    ({"redshift": {"kind": "guess"}}, "redshift"),
    ({"time_window": [59500, 59400]}, "time_window"),
    ({"mwebv": -0.1}, "mwebv"),
    ({"sourcee": "salt3"}, "sourcee"),
])
def test_bad_config_names_the_field(config, field):
    with pytest.raises(UnitConfigError, match="T2SNCosmoFit") as error:
        build_unit(T2SNCosmoFit, config)
    assert field in str(error.value)


def test_unknown_fit_parameter_says_what_the_model_has(example_datapoints):
    with pytest.raises(ValueError, match=r"'x2' not parameters of source 'salt2' 2.4; it has t0, x0, x1, c"):
        run_unit(T2SNCosmoFit, example_datapoints, **EXAMPLE_CONFIG, fit_parameters=["t0", "x0", "x2"])


def test_config_schema_exports():
    schema = T2SNCosmoFit.model_json_schema()
    assert {"source", "source_version", "redshift", "bounds", "mwebv", "modelcov", "plot_dir", "data_dir"} <= set(schema["properties"])


def test_registered_through_the_plugin(register_plugin):
    from ampel_core.registry import unit_entry
    from ampel_sncosmo import plugin

    registry = register_plugin(plugin, "ampel-plugin-sncosmo")
    entry = unit_entry(registry, "T2SNCosmoFit")
    assert entry["tier"] == 2 and entry["kind"] == "tied"
    assert entry["import_path"] == "ampel_sncosmo.fit:T2SNCosmoFit"


def test_importing_the_plugin_and_unit_does_not_import_sncosmo():
    code = ("import sys, time; t = time.perf_counter(); import ampel_sncosmo.plugin, ampel_sncosmo.fit; "
            "elapsed = time.perf_counter() - t; "
            "heavy = [m for m in ('sncosmo', 'astropy', 'iminuit', 'numpy', 'matplotlib') if m in sys.modules]; "
            "print(heavy, elapsed)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    heavy, elapsed = output.rsplit(" ", 1)
    assert heavy == "[]", f"imported at module level: {heavy}"
    assert float(elapsed) < 0.5


def test_shipped_folder_has_what_the_default_config_needs():
    unit = build_unit(T2SNCosmoFit, {})
    files = unit.resources()
    assert all(Path(path).is_relative_to(SHIPPED_DATA_DIR) for path in files.values())
    assert {"models/salt2/salt2-4/salt2_template_0.dat", "bandpasses/ztf/P48_g.dat", "bandpasses/lsst/total_y.dat"} <= set(files)
