"""Trained classifiers on disk: a model card, one gradient-boosted model per detection-count bin, calibration.

A model is a folder::

    card.json            the ModelCard (training, features, taxonomy, metrics, file digests)
    bin_<label>.ubj.gz   one XGBoost model per bin in XGBoost's own UBJSON format, gzipped (LightGBM:
                         its own text format, .txt.gz); the frameworks read the decompressed bytes
    calibration.json     per bin: the taxonomy indices the model's outputs stand for, and a temperature

No pickle anywhere: every file is read by its framework's own loader or as JSON. `load_classifier`
checks each file's sha256 against the card before it reads it; the classifier's `digest` is the sha256
of the card's canonical JSON, which holds every file's sha256, so a changed file changes the digest.

Probabilities are calibrated by temperature scaling of the model's raw scores (one temperature per
bin, fitted on a calibration split by `ampel_classifiers.train`): ``p = softmax(margin / T)``, so rows
sum to 1 and the ranking of the classes is the model's own.

Detection-count bins follow AMPEL's ELAsTiCC classifiers (`BINS`). A card lists the bins it has a model
for (``bins``) and may name, for a bin without a model, the bin whose model serves it
(``bin_fallback``); a light curve in any other bin raises `ModelMismatch`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
from ampel_core.errors import AmpelError

__all__ = ["BINS", "SHIPPED_MODELS_DIR", "BinModel", "Classifier", "ModelCard", "ModelMismatch", "bin_label",
           "bin_of", "load_classifier", "save_classifier", "shipped_model", "shipped_models"]

SHIPPED_MODELS_DIR = Path(__file__).parent / "models"
CARD_FILE = "card.json"
CALIBRATION_FILE = "calibration.json"

BINS: tuple[tuple[int, int | None], ...] = (
    (1, 1), (2, 2), (3, 4), (5, 6), (7, 9), (10, 14), (15, 20), (21, 30), (31, 45), (46, 75), (76, None))

Framework = Literal["xgboost", "lightgbm"]
_SUFFIX: dict[str, str] = {"xgboost": ".ubj.gz", "lightgbm": ".txt.gz"}


class ModelMismatch(AmpelError, ValueError):
    """The input does not fit the model (features, detection-count bin) or a file does not fit its card."""


def _label(low: int, high: int | None) -> str:
    return str(low) if high == low else f"{low}+" if high is None else f"{low}-{high}"


BIN_LABELS: tuple[str, ...] = tuple(_label(low, high) for low, high in BINS)


def bin_of(n_detections: int) -> int:
    """Index into `BINS` of the bin holding ``n_detections`` (>= 1); ValueError below 1."""
    if n_detections < 1:
        raise ValueError(f"n_detections must be >= 1, got {n_detections}")
    for index, (low, high) in enumerate(BINS):
        if low <= n_detections and (high is None or n_detections <= high):
            return index
    raise AssertionError("unreachable: the last bin is open")


def bin_label(n_detections: int) -> str:
    """The label of the bin holding ``n_detections``: "1", "2", "3-4", ..., "76+"."""
    return BIN_LABELS[bin_of(n_detections)]


class ModelCard(pydantic.BaseModel):
    """What a model is, how it was made and how well it does; stored as ``card.json`` next to the model."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    goal: Literal["infant", "unbiased", "max_posterior"]
    survey: Literal["ztf", "lsst"]
    feature_set: str
    feature_version: str
    feature_names: tuple[str, ...]
    taxonomy: tuple[str, ...]  # ordered class names: the columns of predict_proba
    bins: tuple[str, ...]  # labels of the bins with a model
    bin_fallback: dict[str, str] = {}  # bin without a model -> bin whose model serves it
    training: dict[str, Any] = {}  # config, seed, sizes, simulation notes
    metrics: dict[str, Any] = {}  # on the held-out test split
    files: dict[str, str] = {}  # relative path -> sha256 (filled in by save_classifier)
    framework: Framework = "xgboost"
    framework_version: str = ""
    description: str = ""

    @pydantic.model_validator(mode="after")
    def _check_bins(self) -> ModelCard:
        for label in (*self.bins, *self.bin_fallback, *self.bin_fallback.values()):
            if label not in BIN_LABELS:
                raise ValueError(f"unknown bin {label!r}; bins are {', '.join(BIN_LABELS)}")
        for label, served_by in self.bin_fallback.items():
            if served_by not in self.bins:
                raise ValueError(f"bin_fallback {label!r} -> {served_by!r}: the card has no model for {served_by!r}")
        if len(set(self.taxonomy)) != len(self.taxonomy) or len(self.taxonomy) < 2:
            raise ValueError("taxonomy must name at least two distinct classes")
        return self

    def canonical_json(self) -> str:
        """The card as JSON with sorted keys: what `Classifier.digest` hashes and ``card.json`` holds."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=1, allow_nan=False) + "\n"


@dataclass(frozen=True)
class BinModel:
    """One bin's trained model: a fitted XGBClassifier/LGBMClassifier (or its Booster), the taxonomy
    indices its output columns stand for, and the calibration temperature."""

    estimator: Any
    classes: tuple[int, ...]
    temperature: float = 1.0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _softmax(margins: np.ndarray) -> np.ndarray:
    shifted = margins - margins.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    out: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return out


def _margins(booster: Any, framework: str, features: np.ndarray, n_outputs: int) -> np.ndarray:
    """Raw (pre-softmax) scores, shape (n, n_outputs); a binary model's single score becomes (0, score)."""
    if framework == "xgboost":
        raw = np.asarray(booster.inplace_predict(features, predict_type="margin"), dtype=np.float64)
    else:
        raw = np.asarray(booster.predict(features, raw_score=True), dtype=np.float64)
    raw = raw.reshape(len(features), -1)
    if n_outputs == 2 and raw.shape[1] == 1:
        raw = np.hstack([np.zeros_like(raw), raw])
    return raw


class Classifier:
    """A loaded model: `predict_proba` over the card's taxonomy, per detection-count bin, calibrated."""

    def __init__(self, card: ModelCard, files: Mapping[str, Path], boosters: Mapping[str, Any],
                 calibration: Mapping[str, Mapping[str, Any]]) -> None:
        self.card = card
        self.files = dict(files)
        self.digest = hashlib.sha256(card.canonical_json().encode()).hexdigest()
        self._boosters = dict(boosters)
        self._calibration = dict(calibration)

    def __repr__(self) -> str:
        return f"Classifier({self.card.name!r} {self.card.version}, digest {self.digest[:12]})"

    def check_features(self, names: Sequence[str]) -> None:
        """Raise ModelMismatch unless ``names`` are exactly the card's feature names, in order."""
        expected = self.card.feature_names
        if tuple(names) == expected:
            return
        missing = [name for name in expected if name not in names]
        extra = [name for name in names if name not in expected]
        detail = []
        if missing:
            detail.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if extra:
            detail.append(f"unexpected {extra[:5]}{' ...' if len(extra) > 5 else ''}")
        if not detail:
            first = next(i for i, (a, b) in enumerate(zip(names, expected, strict=True)) if a != b)
            detail.append(f"same names in another order (position {first}: {names[first]!r}, "
                          f"model expects {expected[first]!r})")
        raise ModelMismatch(f"model {self.card.name!r} {self.card.version} was trained on feature set "
                            f"{self.card.feature_set!r} {self.card.feature_version} ({len(expected)} features); "
                            f"the features given ({len(names)}) differ: {'; '.join(detail)}")

    def serving_bin(self, n_detections: int) -> str:
        """The bin whose model classifies a light curve with ``n_detections``; ModelMismatch if none."""
        label = bin_label(n_detections)
        label = self.card.bin_fallback.get(label, label)
        if label not in self._boosters:
            raise ModelMismatch(f"model {self.card.name!r} has no model for {n_detections} detections "
                                f"(bin {label!r}); its bins are {', '.join(self.card.bins)}")
        return label

    def predict_proba(self, features: np.ndarray, n_detections: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, shape (n, len(taxonomy)), rows summing to 1.

        ``features``: (n, len(feature_names)) float array, NaN where a feature is undefined;
        ``n_detections``: (n,) ints >= 1, choosing each row's bin model. Raises ModelMismatch for a
        wrong feature count or a detection count outside the card's bins.
        """
        features = np.asarray(features, dtype=np.float64)
        counts = np.asarray(n_detections, dtype=np.int64).reshape(-1)
        if features.ndim != 2 or features.shape[1] != len(self.card.feature_names):
            raise ModelMismatch(f"model {self.card.name!r} expects features of shape (n, "
                                f"{len(self.card.feature_names)}), got {features.shape}")
        if len(counts) != len(features):
            raise ModelMismatch(f"{len(features)} feature rows but {len(counts)} detection counts")
        labels = np.array([self.serving_bin(int(n)) for n in counts], dtype=object)
        out = np.zeros((len(features), len(self.card.taxonomy)))
        for label in dict.fromkeys(labels.tolist()):
            rows = labels == label
            calibration = self._calibration[label]
            classes = list(calibration["classes"])
            margins = _margins(self._boosters[label], self.card.framework, features[rows], len(classes))
            out[np.ix_(rows, classes)] = _softmax(margins / float(calibration["temperature"]))
        return out


def _load_booster(framework: str, path: Path) -> Any:
    raw = gzip.decompress(path.read_bytes())
    if framework == "xgboost":
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(bytearray(raw))
        booster.set_param({"nthread": 1})
        return booster
    import lightgbm

    return lightgbm.Booster(model_str=raw.decode())


def load_classifier(path: str | Path) -> Classifier:
    """Read a model folder (see the module docstring), checking every file's sha256 against its card.

    Raises ModelMismatch when a file is missing or differs from its card, AmpelError when the card is
    unreadable.
    """
    folder = Path(path)
    card_path = folder / CARD_FILE
    try:
        card = ModelCard.model_validate_json(card_path.read_text())
    except FileNotFoundError:
        raise AmpelError(f"{folder}: not a model folder (no {CARD_FILE})") from None
    except pydantic.ValidationError as error:
        raise AmpelError(f"{card_path}: invalid model card: {error.errors()[0]['msg']} "
                         f"at {'.'.join(map(str, error.errors()[0]['loc']))}") from None
    files = {CARD_FILE: card_path}
    for relative, sha256 in sorted(card.files.items()):
        file = folder / relative
        if not file.is_file():
            raise ModelMismatch(f"model {card.name!r}: file {relative} named in its card is missing in {folder}")
        if _sha256(file) != sha256:
            raise ModelMismatch(f"model {card.name!r}: {relative} does not match the sha256 in its card "
                                "(the file was changed after training; retrain or restore it)")
        files[relative] = file
    calibration = json.loads((folder / CALIBRATION_FILE).read_text())
    boosters = {}
    for label in card.bins:
        relative = f"bin_{label}{_SUFFIX[card.framework]}"
        if relative not in files or label not in calibration:
            raise ModelMismatch(f"model {card.name!r}: bin {label!r} has no {relative} or no calibration")
        boosters[label] = _load_booster(card.framework, files[relative])
    return Classifier(card, files, boosters, calibration)


def save_classifier(directory: str | Path, card: ModelCard, models_by_bin: Mapping[str, BinModel]) -> Classifier:
    """Write ``models_by_bin`` (bin label -> BinModel) and ``card`` into ``directory`` and load them back.

    The card's ``bins``, ``files``, ``framework`` and ``framework_version`` are filled in here. Files
    already in ``directory`` with the names written are replaced; others are left alone.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    framework: str = card.framework
    framework_version = ""
    calibration: dict[str, dict[str, Any]] = {}
    written: list[str] = []
    ordered = [label for label in BIN_LABELS if label in models_by_bin]
    if unknown := set(models_by_bin) - set(ordered):
        raise ValueError(f"unknown bin labels {sorted(unknown)}; bins are {', '.join(BIN_LABELS)}")
    for label in ordered:
        model = models_by_bin[label]
        estimator = model.estimator
        module = type(estimator).__module__.partition(".")[0]
        if module not in _SUFFIX:
            raise TypeError(f"bin {label}: {type(estimator).__name__} is neither an XGBoost nor a LightGBM model")
        framework = module
        relative = f"bin_{label}{_SUFFIX[module]}"
        if module == "xgboost":
            import xgboost

            booster = estimator.get_booster() if hasattr(estimator, "get_booster") else estimator
            raw = bytes(booster.save_raw(raw_format="ubj"))
            framework_version = xgboost.__version__
        else:
            import lightgbm

            booster = getattr(estimator, "booster_", estimator)
            raw = booster.model_to_string().encode()
            framework_version = lightgbm.__version__
        (folder / relative).write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
        calibration[label] = {"classes": list(model.classes), "temperature": float(model.temperature)}
        written.append(relative)
    (folder / CALIBRATION_FILE).write_text(json.dumps(calibration, sort_keys=True, indent=1) + "\n")
    written.append(CALIBRATION_FILE)
    files = {relative: _sha256(folder / relative) for relative in sorted(written)}
    final = ModelCard.model_validate({**card.model_dump(), "bins": tuple(ordered), "files": files,
                                      "framework": framework, "framework_version": framework_version})
    (folder / CARD_FILE).write_text(final.canonical_json())
    return load_classifier(folder)


def shipped_models() -> list[str]:
    """Names of the models shipped as package data (folders under `SHIPPED_MODELS_DIR` with a card)."""
    if not SHIPPED_MODELS_DIR.is_dir():
        return []
    return sorted(path.parent.name for path in SHIPPED_MODELS_DIR.glob(f"*/{CARD_FILE}"))


def shipped_model(name: str) -> Path:
    """The folder of the shipped model ``name`` (e.g. "ztf_max_posterior"); AmpelError naming the choices."""
    folder = SHIPPED_MODELS_DIR / name
    if not (folder / CARD_FILE).is_file():
        raise AmpelError(f"no shipped model {name!r}; shipped: {', '.join(shipped_models()) or 'none'}")
    return folder
