"""Fixtures of the classifier plugin's tests: real alerts shipped in docs/examples/data (SN 2021rhu
from ZTF, five ELAsTiCC objects) decoded by the survey plugins' alert formats, and tiny models
trained here with `save_classifier` on simple simulated light curves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from ampel_classifiers.features import SURVEYS, LightCurve, feature_set
from ampel_core.models import Alert, DataPoint

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"
RHU_ALERTS = EXAMPLES / "data/ztf/pitt-google/ZTF21abiuvdk_SN2021rhu"
ELASTICC_ALERTS = EXAMPLES / "data/elasticc"
TINY_TAXONOMY = ("SN Ia", "AGN", "periodic variable")


def decode(format_name: str, paths: Sequence[Path]) -> list[Alert]:
    """Every alert in ``paths``, decoded by the installed alert format ``format_name``."""
    from ampel_core.registry import get_registry

    registry = get_registry()
    if format_name not in registry.formats:
        pytest.skip(f"needs the alert format {format_name!r} (pip install -e plugins/ampel-plugin-ztf "
                    "plugins/ampel-plugin-lsst)")
    alert_format = registry.component("formats", format_name)()
    return [alert for path in paths for alert in alert_format.decode(path.read_bytes(), str(path))]


@pytest.fixture(scope="session")
def rhu_alerts() -> list[Alert]:
    """The 34 alerts of SN 2021rhu (ZTF21abiuvdk), oldest first."""
    return sorted(decode("ztf", sorted(RHU_ALERTS.glob("*.avro"))), key=lambda a: a.datapoints[0].time)


@pytest.fixture(scope="session")
def rhu_datapoints(rhu_alerts: list[Alert]) -> list[DataPoint]:
    """SN 2021rhu: every datapoint of its alerts (detections and upper limits), one per id."""
    return list({dp.id: dp for alert in rhu_alerts for dp in alert.datapoints}.values())


@pytest.fixture(scope="session")
def elasticc_alerts() -> list[Alert]:
    """The 206 shipped ELAsTiCC alerts of five objects."""
    return decode("elasticc", sorted(ELASTICC_ALERTS.glob("*.avro")))


def simulated(kind: str, n: int, bands: Sequence[str], rng: np.random.Generator) -> LightCurve:
    """A simple light curve of ``n`` points: a transient bump ("SN Ia"), a random walk ("AGN") or a
    sinusoid ("periodic variable"), flux at zp 25, 5 % + 1 errors, all points detections."""
    time = np.sort(rng.uniform(0, 80, n))
    if kind == "SN Ia":
        peak = rng.uniform(10, 40)
        flux = 500 * np.exp(-0.5 * ((time - peak) / rng.uniform(5, 15)) ** 2)
    elif kind == "AGN":
        flux = 300 + np.cumsum(rng.normal(0, 30, n))
    else:
        flux = 300 + 200 * np.sin(2 * np.pi * time / rng.uniform(0.5, 5))
    flux_err = 0.05 * np.abs(flux) + 1
    flux = flux + rng.normal(0, flux_err)
    return LightCurve(time, flux, flux_err, rng.choice(np.array(bands), n), np.ones(n, dtype=bool))


def train_tiny_model(directory: Path, survey: str = "ztf", name: str = "tiny", seed: int = 0,
                     bins: Sequence[str] | None = None, goal: str = "unbiased") -> Path:
    """Train a small XGBoost model on simulated light curves of `TINY_TAXONOMY` and save it with a
    model card into ``directory`` (one copy of the model per bin)."""
    import xgboost

    from ampel_classifiers.model import BINS, BinModel, ModelCard, bin_label, save_classifier

    fs = feature_set("cheap", survey)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(TINY_TAXONOMY), 300)
    lcs = [simulated(TINY_TAXONOMY[k], int(rng.integers(1, 40)), SURVEYS[survey], rng) for k in labels]
    estimator = xgboost.XGBClassifier(n_estimators=8, max_depth=3, random_state=seed, n_jobs=1)
    estimator.fit(fs.extract_many(lcs), labels)
    card = ModelCard(name=name, version="0.0.1", goal=goal, survey=survey, feature_set=fs.name,  # type: ignore[arg-type]
                     feature_version=fs.version, feature_names=fs.names, taxonomy=TINY_TAXONOMY, bins=(),
                     training={"seed": seed, "size": len(lcs), "simulation": "tests/conftest.py simulated()"},
                     description="a tiny test model")
    chosen = [bin_label(low) for low, _ in BINS] if bins is None else bins
    save_classifier(directory, card, {label: BinModel(estimator, tuple(range(len(TINY_TAXONOMY)))) for label in chosen})
    return directory


@pytest.fixture(scope="session")
def train_model() -> Callable[..., Path]:
    """`train_tiny_model` (test modules cannot import conftest under the importlib import mode)."""
    return train_tiny_model


@pytest.fixture(scope="session")
def taxonomy() -> tuple[str, ...]:
    return TINY_TAXONOMY


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ZTF model (cheap features, every bin) in a session folder; copy it before changing it."""
    return train_tiny_model(tmp_path_factory.mktemp("models") / "tiny")
