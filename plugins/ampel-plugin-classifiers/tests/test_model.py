"""Model folders: save/load round trip, digests over the card and every file, mismatches named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ampel_core.errors import AmpelError
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_classifiers.model import (BIN_LABELS, BINS, BinModel, ModelCard, ModelMismatch, bin_label, bin_of,
                                     load_classifier, save_classifier, shipped_model, shipped_models)

FEATURES = ("a", "b", "c", "d")
TAXONOMY = ("SN Ia", "AGN", "periodic variable", "other")


def _card(**update: object) -> ModelCard:
    fields = {"name": "toy", "version": "1", "goal": "unbiased", "survey": "ztf", "feature_set": "cheap",
              "feature_version": "1", "feature_names": FEATURES, "taxonomy": TAXONOMY, "bins": ("1", "2"),
              "bin_fallback": {"3-4": "2"}}
    return ModelCard.model_validate({**fields, **update})


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, len(FEATURES)))
    return x, (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0.5).astype(int)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import xgboost

    x, y = _data(0)
    models = {}
    for label, seed in (("1", 1), ("2", 2)):
        estimator = xgboost.XGBClassifier(n_estimators=8, max_depth=3, random_state=seed, n_jobs=1).fit(x, y)
        models[label] = BinModel(estimator, (0, 1, 2, 3), temperature=1.5)
    out = tmp_path_factory.mktemp("model") / "toy"
    save_classifier(out, _card(), models)
    return out


def test_bins_cover_every_count_once() -> None:
    assert [bin_label(n) for n in (1, 2, 3, 4, 5, 6, 7, 9, 10, 14, 15, 20, 21, 30, 31, 45, 46, 75, 76, 10_000)] == [
        "1", "2", "3-4", "3-4", "5-6", "5-6", "7-9", "7-9", "10-14", "10-14", "15-20", "15-20", "21-30", "21-30",
        "31-45", "31-45", "46-75", "46-75", "76+", "76+"]
    with pytest.raises(ValueError, match="n_detections must be >= 1"):
        bin_label(0)


@given(st.integers(min_value=1, max_value=10**6))
def test_bin_of_contains_the_count(n: int) -> None:
    low, high = BINS[bin_of(n)]
    assert low <= n and (high is None or n <= high)
    assert BIN_LABELS[bin_of(n)] == bin_label(n)


def test_round_trip_predicts_calibrated_rows(folder: Path) -> None:
    classifier = load_classifier(folder)
    x, y = _data(7)
    p = classifier.predict_proba(x, np.array([1, 2, 3, 4] * 100))
    assert p.shape == (400, len(TAXONOMY))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert (p.argmax(axis=1) == y).mean() > 0.8  # the toy model learnt the toy rule
    # bins 3-4 are served by bin 2's model (the card's bin_fallback)
    np.testing.assert_array_equal(p[2::4], classifier.predict_proba(x[2::4], np.full(100, 2)))
    assert set(classifier.files) == {"card.json", "calibration.json", "bin_1.ubj.gz", "bin_2.ubj.gz"}


def test_temperature_is_applied(folder: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "toy"
    shutil.copytree(folder, copy)
    calibration = json.loads((copy / "calibration.json").read_text())
    calibration["1"]["temperature"] = 100.0
    (copy / "calibration.json").write_text(json.dumps(calibration))
    card = json.loads((copy / "card.json").read_text())
    from ampel_classifiers.model import _sha256

    card["files"]["calibration.json"] = _sha256(copy / "calibration.json")
    (copy / "card.json").write_text(json.dumps(card))
    hot = load_classifier(copy).predict_proba(_data(3)[0][:5], np.ones(5, dtype=int))
    cold = load_classifier(folder).predict_proba(_data(3)[0][:5], np.ones(5, dtype=int))
    assert hot.max() < 0.3 < cold.max()  # a high temperature flattens the probabilities towards 1/4


def test_digest_changes_with_any_file(folder: Path, tmp_path: Path) -> None:
    import shutil

    original = load_classifier(folder)
    copy = tmp_path / "toy"
    shutil.copytree(folder, copy)
    assert load_classifier(copy).digest == original.digest
    card = _card(version="2", bins=("1",), bin_fallback={})
    import xgboost

    x, y = _data(0)
    estimator = xgboost.XGBClassifier(n_estimators=9, max_depth=3, random_state=1, n_jobs=1).fit(x, y)
    other = save_classifier(tmp_path / "other", card, {"1": BinModel(estimator, (0, 1, 2, 3))})
    assert other.digest != original.digest


def test_changed_file_is_refused(folder: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "toy"
    shutil.copytree(folder, copy)
    (copy / "bin_2.ubj.gz").write_bytes((copy / "bin_2.ubj.gz").read_bytes() + b"\0")
    with pytest.raises(ModelMismatch, match=r"bin_2\.ubj\.gz does not match the sha256 in its card"):
        load_classifier(copy)
    (copy / "bin_2.ubj.gz").unlink()
    with pytest.raises(ModelMismatch, match=r"bin_2\.ubj\.gz named in its card is missing"):
        load_classifier(copy)
    with pytest.raises(AmpelError, match="not a model folder"):
        load_classifier(tmp_path)


def test_feature_mismatch_names_what_differs(folder: Path) -> None:
    classifier = load_classifier(folder)
    classifier.check_features(FEATURES)
    with pytest.raises(ModelMismatch, match=r"missing \['d'\]; unexpected \['e'\]"):
        classifier.check_features(("a", "b", "c", "e"))
    with pytest.raises(ModelMismatch, match="another order"):
        classifier.check_features(("b", "a", "c", "d"))
    with pytest.raises(ModelMismatch, match="expects features of shape"):
        classifier.predict_proba(np.zeros((2, 3)), np.ones(2))


def test_bin_without_model_raises(folder: Path) -> None:
    classifier = load_classifier(folder)
    with pytest.raises(ModelMismatch, match="no model for 5 detections"):
        classifier.predict_proba(np.zeros((1, 4)), np.array([5]))


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.sampled_from(BIN_LABELS), st.sampled_from(BIN_LABELS), max_size=4),
       st.lists(st.sampled_from(BIN_LABELS), min_size=1, max_size=5, unique=True))
def test_card_validates_fallbacks(fallback: dict[str, str], bins: list[str]) -> None:
    if all(target in bins for target in fallback.values()):
        assert _card(bins=tuple(bins), bin_fallback=fallback).bin_fallback == fallback
    else:
        with pytest.raises(ValueError, match="the card has no model for"):
            _card(bins=tuple(bins), bin_fallback=fallback)


def test_card_refuses_unknown_bins_and_fields() -> None:
    with pytest.raises(ValueError, match="unknown bin '3'"):
        _card(bins=("3",))
    with pytest.raises(ValueError, match="Extra inputs"):
        _card(colour="red")


def test_shipped_models_load() -> None:
    names = shipped_models()
    if not names:
        pytest.skip("no shipped models in this checkout")
    from ampel_classifiers.features import feature_set
    from ampel_classifiers.simulate import simulate

    for name in names:
        classifier = load_classifier(shipped_model(name))
        card = classifier.card
        assert card.name == name
        features = feature_set(card.feature_set, card.survey)
        classifier.check_features(features.names)  # the installed features are those it was trained on
        objects = [o for o in simulate(card.survey, 1, seed=99) if classifier.card.bin_fallback.get(
            bin_label(o.lightcurve.n_detections), bin_label(o.lightcurve.n_detections)) in card.bins]
        p = classifier.predict_proba(features.extract_many([o.lightcurve for o in objects]),
                                     np.array([o.lightcurve.n_detections for o in objects]))
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
    with pytest.raises(AmpelError, match="no shipped model 'nope'; shipped: "):
        shipped_model("nope")
