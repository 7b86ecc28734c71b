"""The shipped models on real alerts: SN 2021rhu, a normal SN Ia at 12.5 mag (far brighter than any
simulated training SN at volume-weighted redshifts), is an SN Ia to the ZTF max-posterior model."""

from __future__ import annotations

import numpy as np

from ampel_classifiers.features import LightCurve, feature_set
from ampel_classifiers.model import load_classifier, shipped_model


def test_ztf_max_posterior_calls_sn2021rhu_an_sn_ia(rhu_datapoints):
    curve = LightCurve.from_datapoints(rhu_datapoints)  # the full light curve, all 34 alerts
    classifier = load_classifier(shipped_model("ztf_max_posterior"))
    features = feature_set(classifier.card.feature_set, classifier.card.survey)
    classifier.check_features(features.names)
    probabilities = classifier.predict_proba(features.extract(curve)[None, :], np.array([curve.n_detections]))[0]
    assert curve.n_detections > 30
    assert classifier.card.taxonomy[int(np.argmax(probabilities))] == "SN Ia", dict(
        zip(classifier.card.taxonomy, probabilities.round(3).tolist(), strict=True))
