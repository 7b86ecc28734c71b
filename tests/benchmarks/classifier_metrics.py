"""Classifier quality on the held-out simulated test split (issue 20's Metrics section).

Run on demand:  python tests/benchmarks/classifier_metrics.py [--model NAME ...] [--workers 2] [--cards]
                                                               [--seed-offset K]

For each shipped model (``ampel_classifiers/models/*``, or ``--model`` names/folders) the test split
its card's training config names — objects ``train + calibration .. + test`` of each class, seeded,
never seen in training or calibration — is simulated again (`ampel_classifiers.train.test_samples`)
and the loaded model is evaluated (`ampel_classifiers.train.evaluate`). ``--cards`` prints the
metrics stored in the cards at training instead (the same split and code, no re-simulation).
``--seed-offset K`` simulates a second, independent test split of the same sizes: the config's seed + K
(objects the model never saw: it trained on its own seed's), to measure the split's noise.

Printed per model: full-light-curve macro-F1, SN Ia ROC AUC (P(SN Ia) vs the rest), Brier score
(multi-class, sum over classes), per-class completeness/purity, a reliability table (confidence
bins: mean confidence vs accuracy), SN Ia completeness vs number of detections, and for the
infant goal the SN Ia (and young-SN) completeness at the threshold with <= 10 % false positives on
light curves with 1-3 detections. Goals: macro-F1 >= 0.80 and SN Ia AUC >= 0.96 (full light
curves, unbiased and max_posterior); infant SN Ia completeness >= 60 % at <= 10 % FPR.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def _row(cells: list[Any], widths: list[int]) -> str:
    return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False))


def report(name: str, taxonomy: tuple[str, ...], metrics: dict[str, Any], seconds: float | None) -> None:
    took = f" ({seconds:.0f} s)" if seconds is not None else " (from the card)"
    print(f"\n== {name}{took}")
    full = metrics.get("full")
    if full:
        goal = "  goal >= 0.80 / >= 0.96"
        print(f"full light curves: n={full['n']}  macro-F1 {full['macro_f1']}  SN Ia AUC {full.get('sn_ia_auc', 'n/a')}"
              f"  Brier {full['brier']}{goal}")
        widths = [20, 13, 8, 6]
        print(_row(["class", "completeness", "purity", "n"], widths))
        for label in taxonomy:
            values = full["per_class"][label]
            print(_row([label, values["completeness"], values["purity"], values["n"]], widths))
        print("reliability:  " + "  ".join(f"{r['bin']}: conf {r['confidence']:.2f} acc {r['accuracy']:.2f} "
                                           f"(n={r['n']})" for r in full["reliability"]))
    curve = metrics.get("sn_ia_completeness_vs_n")
    if curve:
        print("SN Ia completeness vs detections (n: completeness [SNe Ia]): " + "  ".join(
            f"{n}: {curve[n]['completeness']:.2f} [{curve[n]['n_sn_ia']}]" for n in sorted(curve, key=int)))
    infant = metrics.get("infant")
    if infant:
        ia, young = infant["sn_ia_at_fpr_0.10"], infant["young_sn_at_fpr_0.10"]
        print(f"1-3 detections (n={infant['n']}): macro-F1 {infant['macro_f1']}  SN Ia AUC "
              f"{infant.get('sn_ia_auc', 'n/a')}  SN Ia completeness {ia['completeness']:.3f} at FPR "
              f"{ia['false_positive_rate']:.3f} (goal >= 0.60 at <= 0.10);  young SN completeness "
              f"{young['completeness']:.3f} at FPR {young['false_positive_rate']:.3f}")


def main() -> None:
    from ampel_classifiers.model import load_classifier, shipped_model, shipped_models
    from ampel_classifiers.train import TrainConfig, evaluate, test_samples

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="a shipped model's name or a model folder (repeatable)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cards", action="store_true", help="print the metrics stored in the cards")
    parser.add_argument("--seed-offset", type=int, default=0, help="test on the objects of the config's seed + K")
    args = parser.parse_args()
    for name in args.model or shipped_models():
        folder = Path(name) if Path(name).is_dir() else shipped_model(name)
        classifier = load_classifier(folder)
        if args.cards:
            report(classifier.card.name, classifier.card.taxonomy, classifier.card.metrics, None)
            continue
        config = TrainConfig.model_validate(classifier.card.training["config"])
        config = config.model_copy(update={"seed": config.seed + args.seed_offset})
        start = time.perf_counter()
        metrics = evaluate(classifier, test_samples(config, args.workers), config)
        report(classifier.card.name, classifier.card.taxonomy, metrics, time.perf_counter() - start)


if __name__ == "__main__":
    main()
