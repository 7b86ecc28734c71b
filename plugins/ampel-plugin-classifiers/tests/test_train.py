"""Training: two runs of one tiny config give identical files and digests; the CLI's errors are one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from ampel_core.cli import main

from ampel_classifiers.model import load_classifier

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
    for run in ("a", "b"):
        code, out, err = ampel(capsys, "classifiers", "train", str(config), "--output", str(tmp_path / run),
                               "--workers", "1")
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
