"""Training: two runs of one tiny config give identical files and digests; the CLI's errors are one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ampel_core.cli import main
from hypothesis import given, settings
from hypothesis import strategies as st

from ampel_classifiers.model import load_classifier
from ampel_classifiers.simulate import CLASSES, simulate_object
from ampel_classifiers.train import _bin_truncations

TINY = """\
name: tiny
version: "0"
goal: unbiased
survey: {survey}
seed: 3
classes: [SN Ia, SN II, AGN, periodic variable]
sizes: {{train: 12, calibration: 4, test: 4}}
bins: ["1", "2", "3-4"]
min_per_bin: 20
model: {{n_estimators: 5, max_depth: 3}}
output: models
"""


def ampel(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as done:
        code = int(done.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("survey", ["ztf", "lsst"])
def test_training_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str], survey: str) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(survey=survey))
    digests = []
    for run, workers in (("a", "1"), ("b", "2")):  # the files do not depend on the number of workers
        code, out, err = ampel(capsys, "classifiers", "train", str(config), "--output", str(tmp_path / run),
                               "--workers", workers)
        assert code == 0, err
        assert "full-light-curve macro-F1" in out
        digests.append(load_classifier(tmp_path / run / "tiny").digest)
    assert digests[0] == digests[1]
    files = sorted(p.name for p in (tmp_path / "a/tiny").iterdir())
    for name in files:
        assert (tmp_path / "a/tiny" / name).read_bytes() == (tmp_path / "b/tiny" / name).read_bytes(), name
    card = load_classifier(tmp_path / "a/tiny").card
    assert card.taxonomy == ("SN Ia", "SN II", "AGN", "periodic variable")
    assert card.training["config"]["seed"] == 3 and "full" in card.metrics


def test_config_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.yaml"
    cases = {
        TINY.format(survey="hsc"): "survey: Input should be 'ztf' or 'lsst'",
        TINY.format(survey="ztf").replace("AGN", "quasar"): "unknown classes ['quasar']",
        TINY.format(survey="ztf").replace('"3-4"', '"3-5"'): "unknown bins ['3-5']",
        TINY.format(survey="ztf") + "colour: red\n": "colour: Extra inputs are not permitted",
        "name: [": "is not valid YAML",
    }
    for text, message in cases.items():
        config.write_text(text)
        code, _, err = ampel(capsys, "classifiers", "train", str(config))
        assert code == 2
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, err
    code, _, err = ampel(capsys, "classifiers", "train", str(tmp_path / "missing.yaml"))
    assert code == 2 and "does not exist" in err and "Traceback" not in err


def test_info_of_a_missing_model_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = ampel(capsys, "classifiers", "info", "no_such_model")
    assert code == 2 and err.startswith("error: no shipped model 'no_such_model'")


def test_list_and_info_show_the_shipped_cards(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from ampel_classifiers.model import shipped_models

    names = shipped_models()
    if not names:
        pytest.skip("no shipped models in this checkout")
    code, out, _ = ampel(capsys, "classifiers", "list")
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()] == names
    code, out, _ = ampel(capsys, "classifiers", "info", names[0])
    card = json.loads(out)
    assert code == 0 and card["name"] == names[0] and len(card["digest"]) == 64 and card["metrics"]


def test_evaluation_follows_the_card_taxonomy_order() -> None:
    """A config read back from a card (JSON, sorted keys) maps classes by the card's taxonomy order."""
    from ampel_classifiers.train import TrainConfig

    config = TrainConfig.model_validate({
        "name": "x", "version": "0", "goal": "infant", "survey": "ztf", "seed": 0,
        "sizes": {"train": 1, "calibration": 1, "test": 1}, "classes": ["SN Ia", "SN II", "AGN"],
        "taxonomy": {"not SN": ["AGN"], "SN Ia": ["SN Ia"], "SN (other)": ["SN II"]}})
    assert config.target("SN Ia") == 1
    assert config.target("SN Ia", ("SN Ia", "SN (other)", "not SN")) == 0
    assert config.target("AGN", ("SN Ia", "SN (other)", "not SN")) == 2


@settings(max_examples=60, deadline=None)
@given(st.integers(-5, 5), st.lists(st.sampled_from([*CLASSES, "nova"]), min_size=1, max_size=4, unique=True),
       st.sampled_from(["ztf", "lsst", "hsc"]))
def test_config_validation(train_size: int, classes: list[str], survey: str) -> None:
    """A config is accepted exactly when its sizes are positive, its classes and survey known."""
    import pydantic

    from ampel_classifiers.train import TrainConfig

    raw = {"name": "x", "version": "0", "goal": "unbiased", "survey": survey, "seed": 1, "classes": classes,
           "sizes": {"train": train_size, "calibration": 1, "test": 1}}
    valid = train_size > 0 and "nova" not in classes and survey != "hsc"
    if valid:
        assert TrainConfig.model_validate(raw).classes == tuple(classes)
    else:
        with pytest.raises(pydantic.ValidationError):
            TrainConfig.model_validate(raw)


def test_all_truncations_gives_every_detection_count_of_each_bin_an_object_reaches() -> None:
    """Without it one count is drawn within a bin; with it (ztf_infant) each count up to the object's own."""
    objects = [simulate_object("SN Ia", "ztf", (7, 0, i)) for i in range(40)]
    bins = ("1", "2", "3-4", "5-6")
    for obj in objects:
        n = obj.lightcurve.n_detections
        every = _bin_truncations(obj, bins, np.random.default_rng(0), False, every=True)
        assert every == [(label, count) for label, count in
                         (("1", 1), ("2", 2), ("3-4", 3), ("3-4", 4), ("5-6", 5), ("5-6", 6)) if count <= n]
        drawn = _bin_truncations(obj, bins, np.random.default_rng(0), False)
        assert [label for label, _ in drawn] == list(dict.fromkeys(label for label, _ in every))
        assert set(drawn) <= set(every)
    assert {min(o.lightcurve.n_detections, 7) for o in objects} >= {1, 3, 7}  # short and long ones were checked
