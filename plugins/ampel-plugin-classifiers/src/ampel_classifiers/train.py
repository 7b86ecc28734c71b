"""Train a classifier from simulated light curves: ``ampel classifiers train CONFIG``.

The CONFIG (YAML, `TrainConfig`) names the goal, survey, classes, sizes, seed and model parameters.
Training:

1. simulates ``train + calibration + test`` objects per class (`ampel_classifiers.simulate`, object i
   of a class in that order, so the splits never share an object);
2. gives each object, for each detection-count bin it reaches, one light curve truncated at a
   detection count drawn within the bin, or one at each count of the bin with ``all_truncations``
   (``max_posterior`` adds each full light curve to its bin);
3. extracts the configured feature set (`ampel_classifiers.features`);
4. fits one XGBoost model per bin (balanced class weights when ``balanced``); a bin with fewer than
   ``min_per_bin`` training light curves gets no model and is served by the nearest bin below it
   (above it when there is none below);
5. fits one calibration temperature per bin on the calibration split (grid search of the log loss);
6. evaluates on the test split (`evaluate`) and writes the model folder with its card and metrics.

Everything is seeded: the same config gives byte-identical files and the same digest, whatever
``--workers`` (XGBoost always fits on one thread; the workers simulate and extract features).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
from ampel_core.errors import AmpelError

from ampel_classifiers.features import FeatureSet, feature_set
from ampel_classifiers.model import BIN_LABELS, BINS, BinModel, Classifier, ModelCard, bin_of, save_classifier
from ampel_classifiers.simulate import CLASSES, SimulatedObject, simulate_object, truncate

__all__ = ["CURVE_DETECTIONS", "INFANT_MAX_DETECTIONS", "Sizes", "TrainConfig", "evaluate", "load_config",
           "test_samples", "train"]

CURVE_DETECTIONS = (1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50)  # SN Ia completeness vs number of detections
INFANT_MAX_DETECTIONS = 3
INFANT_FPR = 0.10
TEMPERATURES = np.exp(np.linspace(np.log(0.2), np.log(5.0), 81))


class Sizes(pydantic.BaseModel):
    """Objects simulated per class for each split."""

    model_config = pydantic.ConfigDict(extra="forbid")
    train: int = pydantic.Field(gt=0)
    calibration: int = pydantic.Field(gt=0)
    test: int = pydantic.Field(gt=0)


class TrainConfig(pydantic.BaseModel):
    """A training configuration (the YAML file of ``ampel classifiers train``)."""

    model_config = pydantic.ConfigDict(extra="forbid")
    name: str = pydantic.Field(pattern=r"^[A-Za-z0-9_.-]+$")
    version: str
    goal: Literal["infant", "unbiased", "max_posterior"]
    survey: Literal["ztf", "lsst"]
    seed: int = pydantic.Field(ge=0)
    feature_set: Literal["cheap", "full"] = "cheap"
    classes: tuple[str, ...] = CLASSES  # simulated classes
    # taxonomy class -> simulated classes it stands for (default: each simulated class itself)
    taxonomy: dict[str, tuple[str, ...]] = {}
    sizes: Sizes
    bins: tuple[str, ...] = BIN_LABELS
    full_lightcurves: bool = False  # add each object's full light curve to its bin (max_posterior)
    # every detection count of a bin an object reaches, not one drawn within it (infant: 3 and 4 detections)
    all_truncations: bool = False
    balanced: bool = True
    min_per_bin: int = pydantic.Field(default=200, gt=0)
    model: dict[str, Any] = {}  # XGBClassifier parameters
    output: str = "."
    description: str = ""

    @pydantic.model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if unknown := [label for label in self.classes if label not in CLASSES]:
            raise ValueError(f"unknown classes {unknown}; classes are {', '.join(CLASSES)}")
        if unknown := [label for label in self.bins if label not in BIN_LABELS]:
            raise ValueError(f"unknown bins {unknown}; bins are {', '.join(BIN_LABELS)}")
        grouped = [label for members in self.taxonomy.values() for label in members]
        if self.taxonomy and sorted(grouped) != sorted(self.classes):
            raise ValueError("taxonomy must assign each of the classes to exactly one taxonomy class")
        return self

    @property
    def taxonomy_classes(self) -> tuple[str, ...]:
        return tuple(self.taxonomy) if self.taxonomy else self.classes

    def target(self, label: str, order: Sequence[str] | None = None) -> int:
        """Index of a simulated class's taxonomy class in ``order`` (default: the config's taxonomy;
        a model's card gives its own order, which a config read back from JSON may not keep)."""
        group = next((name for name, members in self.taxonomy.items() if label in members), label)
        return list(order or self.taxonomy_classes).index(group)


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config; AmpelError naming the file and the first problem."""
    import yaml

    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text())
        config = TrainConfig.model_validate(raw)
    except FileNotFoundError:
        raise AmpelError(f"training config {file} does not exist") from None
    except yaml.YAMLError as error:
        raise AmpelError(f"training config {file} is not valid YAML: {error}".splitlines()[0]) from None
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        raise AmpelError(f"training config {file}: {'.'.join(map(str, first['loc'])) or 'top level'}: "
                         f"{first['msg']}") from None
    if not Path(config.output).is_absolute():
        config = config.model_copy(update={"output": str((file.parent / config.output).resolve())})
    return config


# --- samples ----------------------------------------------------------------------------------------------------------


def _bin_truncations(obj: SimulatedObject, bins: Sequence[str], rng: np.random.Generator,
                     full: bool, every: bool = False) -> list[tuple[str, int]]:
    """(bin label, detection count) of the light curves an object contributes to training: one count
    drawn within each bin it reaches, or every count with ``every``."""
    n = obj.lightcurve.n_detections
    out = []
    for label in bins:
        low, high = BINS[BIN_LABELS.index(label)]
        if n >= low and every:
            out += [(label, count) for count in range(low, min(n, high or n) + 1)]
        elif n >= low:
            out.append((label, int(rng.integers(low, min(n, high or n) + 1))))
    if full and BIN_LABELS[bin_of(n)] in bins:
        out.append((BIN_LABELS[bin_of(n)], n))
    return out


def _object_samples(task: tuple[str, str, int, int, str, str, tuple[str, ...], bool, bool, bool]) -> dict[str, Any]:
    """Simulate one object and extract the features of its training (or test) light curves."""
    label, survey, seed, index, features_name, split, bins, full, is_test, every = task
    key = (seed, CLASSES.index(label), index)
    obj = simulate_object(label, survey, key)
    features = feature_set(features_name, survey)
    if is_test:
        counts = [("full", obj.lightcurve.n_detections)]
        counts += [(f"n={n}", n) for n in CURVE_DETECTIONS if n < obj.lightcurve.n_detections]
        counts += [(f"infant={n}", n) for n in range(1, INFANT_MAX_DETECTIONS + 1)
                   if n <= obj.lightcurve.n_detections]
    else:
        counts = _bin_truncations(obj, bins, np.random.default_rng((*key, 1)), full, every)
    lightcurves = [obj.lightcurve if n == obj.lightcurve.n_detections else truncate(obj.lightcurve, n)
                   for _, n in counts]
    matrix = features.extract_many(lightcurves) if lightcurves else np.empty((0, len(features.names)))
    return {"label": label, "split": split, "keys": [k for k, _ in counts], "n": [n for _, n in counts],
            "features": matrix}


def _samples(config: TrainConfig, workers: int) -> dict[str, list[dict[str, Any]]]:
    tasks = []
    for label in config.classes:
        start = 0
        for split in ("train", "calibration", "test"):
            count = getattr(config.sizes, split)
            tasks += [(label, config.survey, config.seed, start + i, config.feature_set, split, config.bins,
                       config.full_lightcurves, split == "test", config.all_truncations) for i in range(count)]
            start += count
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_object_samples, tasks, chunksize=16))
    else:
        results = [_object_samples(task) for task in tasks]
    out: dict[str, list[dict[str, Any]]] = {"train": [], "calibration": [], "test": []}
    for result in results:
        out[result["split"]].append(result)
    return out


def _stack(config: TrainConfig, results: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    rows, targets = [], []
    for result in results:
        for position, sample_key in enumerate(result["keys"]):
            if sample_key == key:
                rows.append(result["features"][position])
                targets.append(config.target(result["label"]))
    width = results[0]["features"].shape[1] if results else 0
    return (np.array(rows).reshape(-1, width), np.array(targets, dtype=np.int64))


def test_samples(config: TrainConfig, workers: int = 1) -> list[dict[str, Any]]:
    """Features of the test split (full light curves and truncations) as `evaluate` takes them."""
    test_only = config.model_copy(update={"sizes": config.sizes})
    tasks = []
    start = config.sizes.train + config.sizes.calibration
    for label in test_only.classes:
        tasks += [(label, config.survey, config.seed, start + i, config.feature_set, "test", config.bins,
                   config.full_lightcurves, True, config.all_truncations) for i in range(config.sizes.test)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(_object_samples, tasks, chunksize=16))
    return [_object_samples(task) for task in tasks]


# --- fitting ----------------------------------------------------------------------------------------------------------


def _fit_bin(config: TrainConfig, x: np.ndarray, y: np.ndarray) -> tuple[Any, tuple[int, ...]]:
    import xgboost

    classes = tuple(int(c) for c in np.unique(y))
    encoded = np.searchsorted(classes, y)
    weights = None
    if config.balanced:
        counts = np.bincount(encoded)
        weights = (len(encoded) / (len(counts) * counts))[encoded]
    params = {"n_estimators": 200, "max_depth": 6, "learning_rate": 0.1, "subsample": 0.8,
              "colsample_bytree": 0.8, "tree_method": "hist", **config.model}
    # one thread: XGBoost's multi-threaded histograms may round differently, and the model files must
    # not depend on --workers (which parallelises simulation and features only)
    estimator = xgboost.XGBClassifier(**params, random_state=config.seed, n_jobs=1)
    estimator.fit(x, encoded, sample_weight=weights)
    return estimator, classes


def _temperature(estimator: Any, classes: Sequence[int], x: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the calibration split's log loss (1.0 when it has no sample)."""
    present = np.isin(y, classes)
    if not present.any():
        return 1.0
    margins = np.asarray(estimator.predict(x[present], output_margin=True), dtype=np.float64)
    margins = margins.reshape(int(present.sum()), -1)
    if margins.shape[1] == 1:
        margins = np.hstack([np.zeros_like(margins), margins])
    target = np.searchsorted(classes, y[present])
    losses = []
    for temperature in TEMPERATURES:
        scaled = margins / temperature
        scaled -= scaled.max(axis=1, keepdims=True)
        log_p = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
        losses.append(-log_p[np.arange(len(target)), target].mean())
    return float(round(TEMPERATURES[int(np.argmin(losses))], 6))


def _fallbacks(trained: Sequence[str], wanted: Sequence[str]) -> dict[str, str]:
    fallback = {}
    for label in wanted:
        if label in trained:
            continue
        index = BIN_LABELS.index(label)
        below = [b for b in trained if BIN_LABELS.index(b) < index]
        fallback[label] = below[-1] if below else next(b for b in trained if BIN_LABELS.index(b) > index)
    return fallback


# --- evaluation -------------------------------------------------------------------------------------------------------


def _predict(classifier: Classifier, results: Sequence[Mapping[str, Any]], key: str, config: TrainConfig
             ) -> tuple[np.ndarray, np.ndarray]:
    rows, counts, targets = [], [], []
    for result in results:
        for position, sample_key in enumerate(result["keys"]):
            if sample_key != key:
                continue
            n = result["n"][position]
            try:
                classifier.serving_bin(n)
            except ValueError:
                continue
            rows.append(result["features"][position])
            counts.append(n)
            targets.append(config.target(result["label"], classifier.card.taxonomy))
    if not rows:
        return np.empty((0, len(classifier.card.taxonomy))), np.empty(0, dtype=np.int64)
    return classifier.predict_proba(np.array(rows), np.array(counts)), np.array(targets, dtype=np.int64)


def _completeness_at_fpr(scores: np.ndarray, positive: np.ndarray, threshold: float) -> dict[str, float]:
    selected = scores >= threshold
    return {"threshold": round(threshold, 6),
            "completeness": round(float(selected[positive].mean()) if positive.any() else float("nan"), 4),
            "false_positive_rate": round(float(selected[~positive].mean()) if (~positive).any() else float("nan"), 4)}


def _threshold_at_fpr(scores: np.ndarray, negative: np.ndarray, fpr: float) -> float:
    """The lowest score threshold whose false-positive rate on ``scores[negative]`` is <= ``fpr``."""
    negatives = np.sort(scores[negative])[::-1]
    allowed = int(np.floor(fpr * len(negatives)))
    return float(negatives[allowed]) + 1e-12 if allowed < len(negatives) else 0.0


def _classification_metrics(probabilities: np.ndarray, targets: np.ndarray, taxonomy: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

    predicted = probabilities.argmax(axis=1)
    labels = list(range(len(taxonomy)))
    out: dict[str, Any] = {"n": len(targets),
                           "macro_f1": round(float(f1_score(targets, predicted, labels=labels, average="macro",
                                                            zero_division=0)), 4)}
    completeness = recall_score(targets, predicted, labels=labels, average=None, zero_division=0)
    purity = precision_score(targets, predicted, labels=labels, average=None, zero_division=0)
    out["per_class"] = {name: {"completeness": round(float(c), 4), "purity": round(float(p), 4),
                               "n": int((targets == i).sum())}
                        for i, (name, c, p) in enumerate(zip(taxonomy, completeness, purity, strict=True))}
    if "SN Ia" in taxonomy:
        positive = targets == list(taxonomy).index("SN Ia")
        if positive.any() and (~positive).any():
            out["sn_ia_auc"] = round(float(roc_auc_score(positive, probabilities[:, list(taxonomy).index("SN Ia")])), 4)
    onehot = np.eye(len(taxonomy))[targets]
    out["brier"] = round(float(((probabilities - onehot) ** 2).sum(axis=1).mean()), 4)
    confidence = probabilities.max(axis=1)
    correct = predicted == targets
    table = []
    for low in np.arange(0.0, 1.0, 0.1):
        rows = (confidence >= low) & (confidence < low + 0.1 + (1e-9 if low >= 0.9 else 0))
        if rows.any():
            table.append({"bin": f"{low:.1f}-{low + 0.1:.1f}", "n": int(rows.sum()),
                          "confidence": round(float(confidence[rows].mean()), 4),
                          "accuracy": round(float(correct[rows].mean()), 4)})
    out["reliability"] = table
    return out


def evaluate(classifier: Classifier, results: Sequence[Mapping[str, Any]], config: TrainConfig,
             calibration: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Metrics of ``classifier`` on test samples (`test_samples`): see docs/classifier-training.md.

    ``full``: every test object's full light curve (where a bin serves it); ``sn_ia_completeness_vs_n``:
    the fraction of SN Ia classified as SN Ia at n detections; ``infant``: SN Ia (and young-SN) vs rest
    on light curves with 1-3 detections, at the threshold whose false-positive rate is <= 10 %.
    """
    taxonomy = classifier.card.taxonomy
    metrics: dict[str, Any] = {}
    probabilities, targets = _predict(classifier, results, "full", config)
    if len(targets):
        metrics["full"] = _classification_metrics(probabilities, targets, taxonomy)
    if "SN Ia" in taxonomy:
        curve = {}
        ia = list(taxonomy).index("SN Ia")
        for n in CURVE_DETECTIONS:
            p, t = _predict(classifier, results, f"n={n}", config)
            if (t == ia).any():
                curve[str(n)] = {"n_sn_ia": int((t == ia).sum()),
                                 "completeness": round(float((p[t == ia].argmax(axis=1) == ia).mean()), 4)}
        metrics["sn_ia_completeness_vs_n"] = curve
    infant_p, infant_t = [], []
    for n in range(1, INFANT_MAX_DETECTIONS + 1):
        p, t = _predict(classifier, results, f"infant={n}", config)
        infant_p.append(p)
        infant_t.append(t)
    p, t = np.vstack(infant_p), np.concatenate(infant_t)
    if len(t) and "SN Ia" in taxonomy:
        metrics["infant"] = {"n": len(t), **_classification_metrics(p, t, taxonomy)}
        metrics["infant"].pop("reliability")
        ia = list(taxonomy).index("SN Ia")
        scores, positive = p[:, ia], t == ia
        threshold = _threshold_at_fpr(scores, ~positive, INFANT_FPR)
        metrics["infant"]["sn_ia_at_fpr_0.10"] = _completeness_at_fpr(scores, positive, threshold)
        sn = [i for i, name in enumerate(taxonomy) if name.startswith("SN")]
        young, is_sn = p[:, sn].sum(axis=1), np.isin(t, sn)
        threshold = _threshold_at_fpr(young, ~is_sn, INFANT_FPR)
        metrics["infant"]["young_sn_at_fpr_0.10"] = _completeness_at_fpr(young, is_sn, threshold)
    return metrics


# --- the whole run ----------------------------------------------------------------------------------------------------


def train(config: TrainConfig, output: str | Path | None = None, workers: int | None = None,
          log: Any = print) -> Classifier:
    """Simulate, fit, calibrate, evaluate and write the model folder ``output/config.name``."""
    workers = workers or min(2, os.cpu_count() or 1)
    features: FeatureSet = feature_set(config.feature_set, config.survey)
    taxonomy = config.taxonomy_classes
    log(f"simulating {config.survey} {len(config.classes)} classes x {config.sizes.train}+"
        f"{config.sizes.calibration}+{config.sizes.test} objects (seed {config.seed}, {workers} workers)")
    samples = _samples(config, workers)
    models: dict[str, BinModel] = {}
    sizes: dict[str, int] = {}
    for label in config.bins:
        x, y = _stack(config, samples["train"], label)
        if len(y) < config.min_per_bin or len(np.unique(y)) < 2:
            continue
        estimator, classes = _fit_bin(config, x, y)
        x_cal, y_cal = _stack(config, samples["calibration"], label)
        temperature = _temperature(estimator, classes, x_cal, y_cal)
        models[label] = BinModel(estimator, classes, temperature)
        sizes[label] = len(y)
        log(f"  bin {label:>5}: {len(y)} training, {len(y_cal)} calibration light curves, temperature {temperature:g}")
    if not models:
        raise AmpelError(f"no bin has {config.min_per_bin} training light curves: raise sizes.train")
    fallback = _fallbacks(list(models), config.bins)
    card = ModelCard(name=config.name, version=config.version, goal=config.goal, survey=config.survey,
                     feature_set=features.name, feature_version=features.version, feature_names=features.names,
                     taxonomy=taxonomy, bins=tuple(models), bin_fallback=fallback,
                     training={"config": config.model_dump(mode="json", exclude={"output"}),
                               "training_lightcurves_per_bin": sizes,
                               "simulation": "ampel_classifiers.simulate (see docs/classifier-training.md)",
                               "feature_digest": features.digest},
                     description=config.description)
    folder = Path(output or config.output) / config.name
    classifier = save_classifier(folder, card, models)
    metrics = evaluate(classifier, samples["test"], config)
    card = classifier.card.model_copy(update={"metrics": metrics})
    (folder / "card.json").write_text(card.canonical_json())
    from ampel_classifiers.model import load_classifier

    classifier = load_classifier(folder)
    log(f"wrote {folder} (digest {classifier.digest[:12]})")
    return classifier
