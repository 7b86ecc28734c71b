"""T2 units: `T2LightCurveFeatures` (a state's feature vector) and `T2Classifier` (calibrated class
probabilities of a state from a trained model with a model card).

`T2Classifier` computes its features itself, from the feature set its model card names, instead of
depending on `T2LightCurveFeatures`: a tied unit would add a ticket, a stored feature result and a
dependency lookup per state, which costs more than the cheap features themselves (about 0.1 ms),
and the model card, not the job, then decides which features a model gets.

Heavy imports (light-curve, xgboost) happen inside methods: ``ampel config build`` imports this module
(numpy and pydantic it imports anyway).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from ampel_classifiers.features import FEATURE_VERSIONS, FeatureSet, LightCurve, feature_set
from ampel_classifiers.model import ModelMismatch, bin_label
from ampel_core.errors import AmpelError
from ampel_core.units import JSON, StateUnit

if TYPE_CHECKING:
    from ampel_classifiers.model import Classifier
    from ampel_core.views import StateView

__all__ = ["NoDetections", "T2Classifier", "T2LightCurveFeatures", "feature_values", "young_sn"]


class NoDetections(AmpelError, ValueError):
    """A state without a detection: there is nothing to classify."""


def feature_values(fs: FeatureSet, vector: Any) -> dict[str, float | None]:
    """A feature vector as ``{name: value}``, NaN as None (JSON has no NaN)."""
    return {name: (None if value != value else float(value)) for name, value in zip(fs.names, vector, strict=True)}


def young_sn(probabilities: dict[str, float]) -> float:
    """P(young SN) of an infant model: the sum of the probabilities of its supernova classes (those
    whose name starts with "SN")."""
    return float(sum(p for name, p in probabilities.items() if name.startswith("SN")))


def _feature_identity(fs: FeatureSet) -> JSON:
    return {"name": fs.name, "version": fs.version, "survey": fs.survey, "digest": fs.digest}


class T2LightCurveFeatures(StateUnit):
    """The features of a state's light curve (see `ampel_classifiers.features`).

    Result body: ``feature_set`` ({name, version, survey, digest}), ``n_detections`` and
    ``features`` ({name: value}, None where undefined). The feature set's name and version are in
    the config, hence in the trace; its feature names are code of this package (in the code digest).
    """

    feature_set: Literal["cheap", "full"] = Field("cheap", description="the feature set")
    survey: Literal["ztf", "lsst"] = Field(description="whose bands: ztf (g, r, i) or lsst (ugrizy)")
    feature_version: str = Field("", description="the feature set's version (default: the installed one, "
                                                  "which any other value must equal)")

    @model_validator(mode="before")
    @classmethod
    def _installed_version(cls, data: Any) -> Any:
        if isinstance(data, dict):
            installed = FEATURE_VERSIONS.get(data.get("feature_set", "cheap"))
            version = data.setdefault("feature_version", installed)
            if installed is not None and version != installed:
                raise ValueError(f"feature_version {version!r} of feature set {data.get('feature_set', 'cheap')!r} is "
                                 f"not the installed one ({installed!r})")
        return data

    def process(self, state: StateView) -> JSON:
        fs = feature_set(self.feature_set, self.survey)
        lc = LightCurve.from_datapoints(state.datapoints)
        return {"feature_set": _feature_identity(fs), "n_detections": lc.n_detections,
                "features": feature_values(fs, fs.extract(lc))}


class T2Classifier(StateUnit):
    """Calibrated class probabilities of a state from a trained model (`ampel_classifiers.model`).

    ``model`` is the name of a model shipped with this package (``ampel classifiers list`` lists
    them) or the path of a model directory. The model files are resources, so their sha256 digests
    are in the trace: a changed model changes the trace id. The model card names the feature set;
    its feature names and version are checked against the installed ones when the unit is
    configured (`ModelMismatch` names what differs). Each state is classified by the model of its
    detection-count bin.

    Result body: ``probabilities`` ({class: p}, summing to 1), ``classification`` (the most likely
    class), ``model`` ({name, version, digest}), ``goal``, ``n_detections``, ``bin``,
    ``feature_set`` ({name, version, survey, digest}); an infant model's body adds ``young_sn``
    (P(young SN), see `young_sn`). A state whose detection count has no bin in the model (an
    infant model sees at most 4 detections; no model has a bin for 0) is an error, or, with
    ``outside_bins: skip``, a body ``{"skipped": reason, "model", "n_detections"}`` without
    probabilities.
    """

    model: str = Field(description="a shipped model's name, or the path of a model directory")
    outside_bins: Literal["error", "skip"] = Field(
        "error", description="a state whose detection count (0 included) has no bin in the model: an error, "
                             "or a skipped result")

    def model_path(self) -> Path:
        """The model directory: the shipped model of this name, else the path."""
        from ampel_classifiers.model import shipped_model, shipped_models

        if self.model in shipped_models():
            return shipped_model(self.model)
        path = Path(self.model).expanduser()
        if not path.is_dir():
            raise AmpelError(f"T2Classifier: model {self.model!r} is neither a shipped model "
                             f"({', '.join(shipped_models()) or 'none shipped'}) nor a model directory")
        return path

    def classifier(self) -> Classifier:
        """The loaded model, checked against the installed feature set (loaded once per instance)."""
        return self._loaded

    @cached_property
    def _loaded(self) -> Classifier:
        # a cached property, not a pydantic private attribute: reading one of those costs ~10 µs a call
        from ampel_classifiers.model import load_classifier

        classifier = load_classifier(self.model_path())
        card = classifier.card
        installed = feature_set(card.feature_set, card.survey)
        if card.feature_version != installed.version:
            raise ModelMismatch(f"model {card.name} {card.version}: trained on feature set {card.feature_set} "
                                f"version {card.feature_version}, installed version is {installed.version}")
        classifier.check_features(installed.names)
        return classifier

    def resources(self) -> dict[str, str | Path]:
        return {f"model/{name}": path for name, path in sorted(self.classifier().files.items())}

    def process(self, state: StateView) -> JSON:
        classifier = self.classifier()
        card = classifier.card
        fs = feature_set(card.feature_set, card.survey)
        lc = LightCurve.from_datapoints(state.datapoints)
        n = lc.n_detections
        model = {"name": card.name, "version": card.version, "digest": classifier.digest}
        try:
            if n == 0:
                raise NoDetections(f"state {state.id}: no detection, nothing to classify")
            serving = classifier.serving_bin(n)
        except (NoDetections, ModelMismatch) as error:
            if self.outside_bins == "skip":
                return {"skipped": str(error), "model": model, "n_detections": n}
            raise
        proba = classifier.predict_proba(fs.extract(lc)[None, :], np.array([n]))[0]
        probabilities = dict(zip(card.taxonomy, proba.tolist(), strict=True))
        body = {"probabilities": probabilities, "classification": card.taxonomy[int(proba.argmax())],
                "model": model, "goal": card.goal, "n_detections": n, "bin": bin_label(n), "model_bin": serving,
                "feature_set": _feature_identity(fs)}
        if card.goal == "infant":
            body["young_sn"] = young_sn(probabilities)
        return body
