"""The T2 units on real alerts (SN 2021rhu from ZTF, ELAsTiCC objects) through the core's runtime
functions: result bodies equal direct feature + model calls; the model's files are in the trace; a
model that does not fit the installed features is a clear error."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_classifiers.features import FEATURE_VERSIONS, LightCurve, feature_set
from ampel_classifiers.model import ModelMismatch, load_classifier
from ampel_classifiers.units import NoDetections, T2Classifier, T2LightCurveFeatures, feature_values
from ampel_core.errors import AmpelError
from ampel_core.testing import run_unit
from ampel_core.units import UnitConfigError, UnitRef, build_unit


@pytest.fixture(scope="module")
def registry():
    from ampel_core.registry import get_registry

    registry = get_registry()
    if "T2Classifier" not in registry.units:
        pytest.skip("needs ampel-plugin-classifiers installed (pip install -e plugins/ampel-plugin-classifiers)")
    return registry


def trace_of(registry, config):
    from ampel_core.runtime.configured import configure

    return configure(registry, UnitRef("T2Classifier", config)).trace


def direct(classifier, datapoints) -> tuple[np.ndarray, int]:
    """Features + model called directly, without the unit."""
    curve = LightCurve.from_datapoints(datapoints)
    fs = feature_set(classifier.card.feature_set, classifier.card.survey)
    return classifier.predict_proba(fs.extract(curve)[None, :], np.array([curve.n_detections]))[0], curve.n_detections


def test_features_unit_on_every_state_of_sn2021rhu(rhu_alerts):
    fs = feature_set("cheap", "ztf")
    seen: list = []
    for alert in rhu_alerts:  # the light curve as it grew, alert by alert
        seen = list({dp.id: dp for dp in [*seen, *alert.datapoints]}.values())
        body = run_unit(T2LightCurveFeatures, seen, survey="ztf")
        curve = LightCurve.from_datapoints(seen)
        assert body["feature_set"] == {"name": "cheap", "version": FEATURE_VERSIONS["cheap"], "survey": "ztf",
                                       "digest": fs.digest}
        assert body["n_detections"] == curve.n_detections == sum(dp.is_detection for dp in seen)
        assert body["features"] == feature_values(fs, fs.extract(curve))
    assert body["n_detections"] > 30 and body["features"]["n_bands"] == 2


def test_features_unit_on_elasticc_alerts(elasticc_alerts):
    fs = feature_set("full", "lsst")
    for alert in elasticc_alerts[::20]:
        body = run_unit(T2LightCurveFeatures, list(alert.datapoints), survey="lsst", feature_set="full")
        assert body["features"] == feature_values(fs, fs.extract(LightCurve.from_datapoints(alert.datapoints)))
        assert body["n_detections"] >= 1 and body["feature_set"]["name"] == "full"


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["cheap", "full"]), st.sampled_from(["ztf", "lsst"]), st.text(max_size=8))
def test_features_unit_config_holds_the_installed_version(name, survey, version):
    """The version is always in the config (so in the trace); only the installed one is accepted."""
    unit = build_unit(T2LightCurveFeatures, {"feature_set": name, "survey": survey})
    assert unit.model_dump() == {"feature_set": name, "survey": survey, "feature_version": FEATURE_VERSIONS[name]}
    assert build_unit(T2LightCurveFeatures, unit.model_dump()) == unit  # rebuilt from a trace's config
    if version != FEATURE_VERSIONS[name]:
        with pytest.raises(UnitConfigError, match="is not the installed one"):
            build_unit(T2LightCurveFeatures, {"feature_set": name, "survey": survey, "feature_version": version})


def test_features_unit_refuses_another_feature_version():
    installed = FEATURE_VERSIONS["cheap"]
    with pytest.raises(UnitConfigError, match=rf"feature_version '0' of feature set 'cheap' is not the installed one \('{installed}'\)"):
        run_unit(T2LightCurveFeatures, [], survey="ztf", feature_version="0")


def test_classifier_unit_equals_direct_features_and_model_on_sn2021rhu(tiny_model, rhu_alerts, taxonomy):
    classifier = load_classifier(tiny_model)
    unit = build_unit(T2Classifier, {"model": str(tiny_model)})
    seen: list = []
    for alert in rhu_alerts:
        seen = list({dp.id: dp for dp in [*seen, *alert.datapoints]}.values())
        body = run_unit(unit, seen)
        expected, n = direct(classifier, seen)
        assert list(body["probabilities"]) == list(taxonomy)
        np.testing.assert_array_equal(list(body["probabilities"].values()), expected)
        assert math.isclose(sum(body["probabilities"].values()), 1.0, rel_tol=1e-12)
        assert body["classification"] == taxonomy[int(np.argmax(expected))]
        assert body["model"] == {"name": "tiny", "version": "0.0.1", "digest": classifier.digest}
        assert body["n_detections"] == n and body["goal"] == "unbiased"
        assert body["bin"] == body["model_bin"] == classifier.serving_bin(n)
        assert body["feature_set"]["digest"] == feature_set("cheap", "ztf").digest


def test_classifier_unit_on_elasticc_alerts(tmp_path, elasticc_alerts, train_model, taxonomy):
    model = train_model(tmp_path / "lsst", survey="lsst")
    unit, classifier = build_unit(T2Classifier, {"model": str(model)}), load_classifier(model)
    for alert in elasticc_alerts[::15]:
        body = run_unit(unit, list(alert.datapoints))
        expected, _ = direct(classifier, alert.datapoints)
        np.testing.assert_array_equal(list(body["probabilities"].values()), expected)
        assert body["classification"] in taxonomy


def test_model_files_are_resources_and_a_changed_model_changes_the_trace(registry, tiny_model, tmp_path, train_model):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    before = trace_of(registry, {"model": str(model)})
    assert trace_of(registry, {"model": str(model)}).id == before.id  # stable
    assert set(before.resources) == {f"model/{name}" for name in load_classifier(model).files}
    assert {"model/card.json", "model/calibration.json"} <= set(before.resources)
    bin_1 = next(name for name in before.resources if name.startswith("model/bin_1."))

    train_model(model, seed=1)  # retrained in place: same config, other files
    after = trace_of(registry, {"model": str(model)})
    assert after.id != before.id and after.config == before.config and after.code == before.code
    changed = {name for name in before.resources if before.resources[name] != after.resources[name]}
    assert "model/card.json" in changed and bin_1 in changed


def test_a_model_file_changed_after_training_is_refused(registry, tiny_model, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (bin_2,) = model.glob("bin_2.*")
    bin_2.write_bytes(bin_2.read_bytes() + b"\0")
    with pytest.raises(ModelMismatch, match=rf"{bin_2.name} does not match the sha256 in its card"):
        trace_of(registry, {"model": str(model)})


def edit_card(model: Path, **changes) -> None:
    card = json.loads((model / "card.json").read_text())
    card.update(changes)
    (model / "card.json").write_text(json.dumps(card))


def test_a_model_trained_on_other_features_is_a_clear_error(registry, tiny_model, tmp_path, rhu_datapoints):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    names = feature_set("cheap", "ztf").names
    edit_card(model, feature_names=[*names[:5], "my_feature", *names[6:]])
    with pytest.raises(ModelMismatch, match=rf"missing \['my_feature'\]; unexpected \['{names[5]}'\]"):
        run_unit(T2Classifier, rhu_datapoints, model=str(model))
    with pytest.raises(ModelMismatch, match=r"the features given \(\d+\) differ"):
        trace_of(registry, {"model": str(model)})
    edit_card(model, feature_names=list(names), feature_version="0")
    with pytest.raises(ModelMismatch, match=f"version 0, installed version is {FEATURE_VERSIONS['cheap']}"):
        run_unit(T2Classifier, rhu_datapoints, model=str(model))


def test_a_detection_count_outside_the_models_bins(tmp_path, rhu_datapoints, train_model):
    model = train_model(tmp_path / "infant", bins=("1", "2", "3-4"), goal="infant")
    n = LightCurve.from_datapoints(rhu_datapoints).n_detections
    with pytest.raises(ModelMismatch, match=f"no model for {n} detections"):
        run_unit(T2Classifier, rhu_datapoints, model=str(model))
    body = run_unit(T2Classifier, rhu_datapoints, model=str(model), outside_bins="skip")
    assert set(body) == {"skipped", "model", "n_detections"} and body["n_detections"] == n
    first_two = sorted((dp for dp in rhu_datapoints if dp.is_detection), key=lambda dp: dp.time)[:2]
    body = run_unit(T2Classifier, first_two, model=str(model), outside_bins="skip")
    assert body["bin"] == "2" and body["goal"] == "infant" and "skipped" not in body
    assert body["young_sn"] == pytest.approx(body["probabilities"]["SN Ia"])  # the one SN class of the tiny model


def test_no_detection_and_no_model_are_errors(tiny_model, rhu_datapoints):
    limits = [dp for dp in rhu_datapoints if dp.upper_limit]
    with pytest.raises(NoDetections, match="no detection, nothing to classify"):
        run_unit(T2Classifier, limits, model=str(tiny_model))
    skipped = run_unit(T2Classifier, limits, model=str(tiny_model), outside_bins="skip")
    assert skipped["n_detections"] == 0 and "no detection" in skipped["skipped"]
    with pytest.raises(AmpelError, match=r"'nowhere' is neither a shipped model .* nor a model directory"):
        run_unit(T2Classifier, rhu_datapoints, model="nowhere")
