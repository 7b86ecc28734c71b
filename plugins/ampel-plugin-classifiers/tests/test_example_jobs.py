"""The example jobs docs/examples/classifiers-{ztf,elasticc}.yml end to end through ``ampel job``: the
shipped ZTF and ELAsTiCC alerts, one channel per goal, classifier results with the required body
fields in the store. Once with tiny models trained here (the job's wiring), once with the models
shipped in the package."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ampel_classifiers.model import load_classifier, shipped_model, shipped_models

REPO = Path(__file__).resolve().parents[3]
JOBS = {"ztf": ("classifiers-ztf.yml", "ztf", "ZTF"), "elasticc": ("classifiers-elasticc.yml", "lsst", "LSST")}
GOALS = ("infant", "unbiased", "max_posterior")


def run_example(job: str, tmp_path: Path, models: dict[str, str]) -> tuple[dict, list, list]:
    """``ampel job`` on the example in a store of its own; the summary, the T2Classifier and the
    T2LightCurveFeatures results."""
    from ampel_core.store import open_store

    file, _, _ = JOBS[job]
    store = f"sqlite:///{tmp_path / 'ampel.db'}"
    sets = [item for goal, model in models.items() for item in ("--set", f"{goal}_model={model}")]
    command = [sys.executable, "-m", "ampel_core.cli", "job", str(REPO / "docs/examples" / file), "--store", store,
               "--no-progress", "--summary-json", str(tmp_path / "summary.json"), *sets]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    opened = open_store(store, read_only=True)
    try:
        return summary, [result for _, result in opened.results(unit="T2Classifier")], [
            result for _, result in opened.results(unit="T2LightCurveFeatures")]
    finally:
        opened.close()


def check_results(results: list, models: dict[str, str]) -> None:
    """Every goal's channel classified states, and every result body has the required fields."""
    loaded = {goal: load_classifier(model if "/" in model else shipped_model(model)) for goal, model in models.items()}
    by_model: dict[str, list[dict]] = {}
    for result in results:
        assert result.status == "ok", result.body
        by_model.setdefault(result.body["model"]["name"], []).append(result.body)
    for goal, classifier in loaded.items():
        bodies = [b for b in by_model.get(classifier.card.name, []) if "skipped" not in b]
        assert bodies, f"no {goal} classification"
        for body in bodies:
            assert body["model"] == {"name": classifier.card.name, "version": classifier.card.version,
                                     "digest": classifier.digest}
            assert set(body["probabilities"]) == set(classifier.card.taxonomy)  # stored with sorted keys
            assert math.isclose(sum(body["probabilities"].values()), 1.0, rel_tol=1e-9)
            assert body["classification"] == max(body["probabilities"], key=body["probabilities"].get)
            assert body["goal"] == classifier.card.goal and body["n_detections"] >= 1
        if classifier.card.goal == "infant":
            assert all(body["n_detections"] <= 4 and "young_sn" in body for body in bodies)
            assert any("skipped" in b for b in by_model[classifier.card.name])  # the longer light curves


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, train_model) -> dict[str, dict[str, str]]:
    root = tmp_path_factory.mktemp("example-models")
    return {job: {goal: str(train_model(root / f"{survey}_{goal}", survey=survey, name=f"tiny_{survey}_{goal}",
                                        goal=goal, bins=("1", "2", "3-4") if goal == "infant" else None))
                  for goal in GOALS}
            for job, (_, survey, _) in JOBS.items()}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_example_job_with_tiny_models(job, tmp_path, tiny_models):
    summary, results, _ = run_example(job, tmp_path, tiny_models[job])
    check_results(results, tiny_models[job])
    assert summary["status"] == "ok" and summary["alerts"] == (62 if job == "ztf" else 206)


@pytest.mark.parametrize("job", sorted(JOBS))
def test_example_job_with_the_shipped_models(job, tmp_path, tiny_models):
    """The job as it is, with the models shipped so far (a goal whose model is not shipped yet
    runs with its tiny model)."""
    _, survey, _ = JOBS[job]
    shipped = {goal: f"{survey}_{goal}" for goal in GOALS if f"{survey}_{goal}" in shipped_models()}
    if not shipped:
        pytest.skip(f"no {survey} model shipped yet")
    overrides = {goal: model for goal, model in tiny_models[job].items() if goal not in shipped}
    _, results, features = run_example(job, tmp_path, overrides)
    check_results(results, {**shipped, **overrides})
    check_context(job, features)


def check_context(job: str, features: list) -> None:
    """The context features of the stored states come from the alerts' own fields (they survive the
    store): ZTF's PS1 star/galaxy score, ELAsTiCC's host redshift."""
    from ampel_core.registry import get_registry

    fmt = get_registry().component("formats", "ztf" if job == "ztf" else "elasticc")()
    folder = REPO / "docs/examples/data" / ("ztf" if job == "ztf" else "elasticc")
    field, name = ("sgscore1", "ps1_sgscore") if job == "ztf" else ("hostgal_z", "host_z")
    in_alerts = set()
    for path in folder.rglob("*.avro"):
        try:
            alerts = fmt.decode(path.read_bytes(), str(path))
        except Exception:  # the ZTF examples include unreadable files on purpose
            continue
        in_alerts |= {dp.extra[field] for alert in alerts for dp in alert.datapoints if field in dp.extra}
    stored = {result.body["features"][name] for result in features} - {None}
    assert stored and stored <= in_alerts, (sorted(stored)[:5], sorted(in_alerts)[:5])
