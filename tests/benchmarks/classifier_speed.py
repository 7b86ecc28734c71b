"""Classifier speed (issue 20's Speed section): feature extraction, batched inference, framework overhead.

Run on demand:  python tests/benchmarks/classifier_speed.py [--seconds 2] [--repeat 5] [--batch 10000]

Light curves: real alerts. ZTF: every object of ../shared/data/ztf_alerts (its datapoints from all
its alerts: detections, upper limits, forced photometry where the alert has it); ELAsTiCC: the latest
alert of each of the 518 objects of ../shared/data/elasticc/alerce_simulator_...tar.gz. Without
../shared/data, the alerts shipped in docs/examples/data (fewer objects). One thread everywhere
(OMP_NUM_THREADS=1, XGBoost nthread 1), so every rate is per core.

Rows:
- features: `FeatureSet.extract_many` on ready `LightCurve`s (cheap: target >= 5,000 light curves/s;
  full: for information), the best of ``--repeat`` passes of at least ``--seconds`` each.
- inference: `Classifier.predict_proba` on ``--batch`` feature rows at once, spread over the
  detection-count bins as the light curves are (target >= 10,000 rows/s).
- per ticket: ``--states`` states (evenly picked), one at a time. "direct" calls features + model as a user would:
  ``fs.extract(lc)`` and ``predict_proba(x[None], [n])`` on a ready LightCurve ("from datapoints":
  with ``LightCurve.from_datapoints`` included); "unit" is ``call_unit(T2Classifier, state_view)``
  as the T2 runtime calls it (datapoints -> light curve -> features -> model -> result body), plus
  the runtime's `t2_body` check. Overhead = unit / direct - 1 (target <= 5 %), per state, the two
  sides alternating (in rotating order) ``--repeat`` rounds of ``--inner`` calls, each side's fastest round counted
  (CPU time; the fastest is the least disturbed by other load on a shared machine).

Models: the shipped ``ztf_unbiased`` / ``lsst_unbiased`` when shipped; otherwise a stand-in of the
same shape trained here (XGBoost, 8 classes, 80 trees of depth 4 per class, every bin).
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from ampel_classifiers.features import LightCurve, feature_set  # noqa: E402
from ampel_classifiers.model import (  # noqa: E402
    BINS, BinModel, ModelCard, bin_label, load_classifier, save_classifier, shipped_model, shipped_models,
)
from ampel_classifiers.units import T2Classifier  # noqa: E402
from ampel_core.models import DataPoint  # noqa: E402
from ampel_core.registry import get_registry  # noqa: E402
from ampel_core.runtime.configured import call_unit, t2_body  # noqa: E402
from ampel_core.testing import shared_data_dir, state_view  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TAXONOMY = ("SN Ia", "SN Ibc", "SN II", "SLSN", "TDE", "AGN", "periodic variable", "other")


def decode(format_name: str, payloads: list[tuple[bytes, str]]) -> list[Any]:
    alert_format = get_registry().component("formats", format_name)()
    return [alert for payload, origin in payloads for alert in alert_format.decode(payload, origin)]


def ztf_objects() -> list[list[DataPoint]]:
    shared = shared_data_dir(ROOT)
    folder = shared / "ztf_alerts" if shared and (shared / "ztf_alerts").is_dir() else ROOT / "docs/examples/data/ztf"
    payloads = [(path.read_bytes(), str(path)) for path in sorted(folder.rglob("*.avro"))]
    objects: dict[int, dict[int, DataPoint]] = {}
    for payload, origin in payloads:
        try:
            alerts = decode("ztf", [(payload, origin)])
        except Exception:  # a few files of the data set are unreadable on purpose
            continue
        for alert in alerts:
            objects.setdefault(alert.stock, {}).update({dp.id: dp for dp in alert.datapoints})
    return [list(points.values()) for points in objects.values()]


def elasticc_objects() -> list[list[DataPoint]]:
    shared = shared_data_dir(ROOT)
    archive = shared / "elasticc/alerce_simulator_elasticc_v0_9_5689alerts.tar.gz" if shared else None
    payloads: list[tuple[bytes, str]] = []
    if archive and archive.is_file():
        latest: dict[str, tuple[float, tarfile.TarInfo]] = {}
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                found = re.search(r"alert_mjd([\d.]+)_obj(\d+)_", member.name)
                if found and (found[2] not in latest or latest[found[2]][0] < float(found[1])):
                    latest[found[2]] = (float(found[1]), member)
            for _, member in latest.values():
                handle = tar.extractfile(member)
                assert handle is not None
                payloads.append((handle.read(), member.name))
    else:
        by_object: dict[str, tuple[float, Path]] = {}
        for path in (ROOT / "docs/examples/data/elasticc").glob("*.avro"):
            found = re.search(r"alert_mjd([\d.]+)_obj(\d+)_", path.name)
            assert found
            if found[2] not in by_object or by_object[found[2]][0] < float(found[1]):
                by_object[found[2]] = (float(found[1]), path)
        payloads = [(path.read_bytes(), str(path)) for _, path in by_object.values()]
    return [list(alert.datapoints) for alert in decode("elasticc", payloads)]


def stand_in_model(survey: str, directory: Path, curves: list[LightCurve]) -> Path:
    """An XGBoost model of the shipped models' shape (labels drawn at random: only its speed matters)."""
    import xgboost

    fs = feature_set("cheap", survey)
    rng = np.random.default_rng(20)
    features = fs.extract_many(curves)
    rows = rng.integers(0, len(curves), 2000)
    labels = np.arange(2000) % len(TAXONOMY)
    estimator = xgboost.XGBClassifier(n_estimators=80, max_depth=4, n_jobs=1, random_state=20)
    estimator.fit(features[rows] * rng.normal(1, 0.1, (2000, features.shape[1])), labels)
    card = ModelCard(name=f"{survey}_stand_in", version="0", goal="unbiased", survey=survey,
                     feature_set="cheap", feature_version=fs.version, feature_names=fs.names, taxonomy=TAXONOMY,
                     bins=())
    save_classifier(directory, card, {bin_label(low): BinModel(estimator, tuple(range(len(TAXONOMY))))
                                      for low, _ in BINS})
    return directory


def rate(call: Callable[[], Any], units: int, seconds: float, repeat: int) -> float:
    """Items per second of CPU time: the best of ``repeat`` passes of at least ``seconds``."""
    best = 0.0
    for _ in range(repeat):
        done, start = 0, time.process_time()
        while (elapsed := time.process_time() - start) < seconds:
            call()
            done += units
        best = max(best, done / elapsed)
    return best


def minimum(call: Callable[[], Any], repeat: int, inner: int = 20) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(inner):
            call()
        best = min(best, (time.process_time() - start) / inner)
    return best


def per_ticket(model: Path, objects: list[list[DataPoint]], rounds: int,
               inner: int) -> dict[str, float]:
    """Seconds per state, summed over the states: direct (ready light curve), direct from
    datapoints, unit. The sides alternate ``rounds`` times; each keeps its fastest round."""
    unit = T2Classifier(model=str(model))
    classifier = unit.classifier()  # loaded once per instance, as in a worker; both sides use its boosters
    card = classifier.card
    fs = feature_set(card.feature_set, card.survey)
    totals = {"direct": 0.0, "from datapoints": 0.0, "unit": 0.0}
    for datapoints in objects:
        view = state_view(datapoints)
        curve = LightCurve.from_datapoints(datapoints)

        def direct(curve: LightCurve = curve) -> Any:
            return classifier.predict_proba(fs.extract(curve)[None, :], np.array([curve.n_detections]))

        def from_datapoints(datapoints: list[DataPoint] = datapoints) -> Any:
            curve = LightCurve.from_datapoints(datapoints)
            return classifier.predict_proba(fs.extract(curve)[None, :], np.array([curve.n_detections]))

        def framework(view: Any = view) -> Any:
            return t2_body("T2Classifier", call_unit(unit, view))

        sides: dict[str, Callable[[], Any]] = {"direct": direct, "from datapoints": from_datapoints, "unit": framework}
        best = dict.fromkeys(sides, float("inf"))
        order = list(sides)
        for round_ in range(rounds):  # each side first, second and third in turn: no order bias
            for side in order[round_ % 3:] + order[: round_ % 3]:
                best[side] = min(best[side], minimum(sides[side], 1, inner))
        for side, seconds in best.items():
            totals[side] += seconds
    return totals


def measure(survey: str, objects: list[list[DataPoint]], args: argparse.Namespace, scratch: Path
            ) -> list[tuple[str, str, str, str]]:
    """The table rows of one survey's light curves."""
    pairs = [(points, curve) for points in objects if (curve := LightCurve.from_datapoints(points)).n_detections]
    objects, curves = [p for p, _ in pairs], [c for _, c in pairs]
    points = np.array([len(c.time) for c in curves])
    label = f"{survey.upper()} ({len(curves)} real light curves, median {int(np.median(points))} points)"
    rows = []
    for name in ("cheap", "full"):
        fs = feature_set(name, survey)
        per_second = rate(partial(fs.extract_many, curves), len(curves), args.seconds, args.repeat)
        rows.append((label, f"{name} features ({len(fs.names)}), light curves/s/core", f"{per_second:,.0f}",
                     "≥ 5,000" if name == "cheap" else "-"))

    shipped = f"{survey}_unbiased"
    model = shipped_model(shipped) if shipped in shipped_models() else stand_in_model(survey, scratch / survey, curves)
    classifier = load_classifier(model)
    fs = feature_set(classifier.card.feature_set, survey)
    pick = np.arange(args.batch) % len(curves)
    batch = fs.extract_many(curves)[pick]
    counts = np.array([c.n_detections for c in curves])[pick]
    per_second = rate(lambda: classifier.predict_proba(batch, counts), args.batch, args.seconds, args.repeat)
    rows.append((label, f"inference, {classifier.card.name} ({len(classifier.card.bins)} bins), "
                        f"batch of {args.batch:,}, rows/s/core", f"{per_second:,.0f}", "≥ 10,000"))

    sample = objects[:: max(1, len(objects) // args.states)][: args.states]
    totals = per_ticket(model, sample, args.repeat, args.inner)
    for side in ("direct", "from datapoints", "unit"):
        rows.append((label, f"per ticket ({len(sample)} states): {side}, µs/state",
                     f"{totals[side] / len(sample) * 1e6:,.0f}", "-"))
    rows.append((label, "framework overhead: unit vs direct (ready light curve)",
                 f"{100 * (totals['unit'] / totals['direct'] - 1):+.1f} %", "≤ 5 %"))
    rows.append((label, "framework overhead: unit vs direct from datapoints",
                 f"{100 * (totals['unit'] / totals['from datapoints'] - 1):+.1f} %", "≤ 5 %"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum CPU seconds per rate pass")
    parser.add_argument("--repeat", type=int, default=6, help="passes per rate; alternating rounds per state")
    parser.add_argument("--inner", type=int, default=5, help="calls per state and round (per ticket)")
    parser.add_argument("--states", type=int, default=100, help="states per survey timed per ticket (evenly picked)")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per predict_proba call")
    args = parser.parse_args(argv)

    header = ("light curves", "measure", "value", "target")
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as scratch:
        rows += measure("ztf", ztf_objects(), args, Path(scratch))
        rows += measure("lsst", elasticc_objects(), args, Path(scratch))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
