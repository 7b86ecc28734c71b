"""Negative subtractions (ZTF isdiffpos = f) through the real engine into a real SQLite store: the
light-curve summary and the plot treat them as what they are, not as brightenings (issue 18,
item 9)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

from ampel_core import api
from ampel_core.drivers import run_job
from ampel_core.jobs import load_job
from ampel_core.registry import Registry
from ampel_core.store import Store

matplotlib.use("Agg")

SAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "data" / "ztf"
# ZTF20acunklg: 3 detections, all isdiffpos = f (ALeRCE's lc_classifier example); ZTF18acruwxq:
# 16 detections, 2 of them isdiffpos = f before the SN rose (AMPEL's test alert)
ALERTS = [SAMPLE / "alerce" / "lc_classifier_example", SAMPLE / "ampel-ztf" / "ZTF18acruwxq"]


@pytest.fixture
def store(tmp_path: Path, ztf_registry: Registry) -> Store:
    url = f"sqlite:///{tmp_path / 'negative.db'}"
    run_job(load_job({
        "store": url, "channels": [{"name": "ALL", "t2": [{"unit": "T2LightCurveSummary"}]}],
        "tasks": [{"tier": 0, "format": {"name": "ztf"},
                   "source": {"name": "files", "config": {"paths": [str(p) for p in ALERTS], "pattern": "*.avro"}}},
                  {"tier": 2}]}), registry=ztf_registry)
    return api.open_store(url)


def summary(store: Store, name: str) -> dict:
    [body] = [r.body for _, r in store.results(stock=api.resolve_stock(store, name), unit="T2LightCurveSummary")]
    assert body is not None
    return body


def test_negative_subtractions_are_not_brightenings(store: Store) -> None:
    detections = [dp for dp in store.stock_datapoints(api.resolve_stock(store, "ZTF20acunklg")) if dp.is_detection]
    assert len(detections) == 3 and all(dp.flux < 0 and dp.extra["isdiffpos"] == "f" for dp in detections)
    assert {round(dp.flux, 1) for dp in detections} >= {-434.9}

    only_negative = summary(store, "ZTF20acunklg")  # was: peak_flux -434.9 with peak_mag 18.40
    assert only_negative["ndet"] == 0 and only_negative["nneg"] == 3 and only_negative["nlim"] == 4
    assert only_negative["first_detection"] is None and only_negative["duration"] == 0.0
    assert only_negative["bands"]["ztfg"] == {"ndet": 0, "nneg": 3, "nlim": 1, "nforced": 0, "peak_flux": None,
                                              "peak_mag": None, "peak_time": None}

    mixed = summary(store, "ZTF18acruwxq")
    points = [dp for dp in store.stock_datapoints(api.resolve_stock(store, "ZTF18acruwxq")) if dp.is_detection]
    positive = [dp for dp in points if dp.flux > 0]
    assert mixed["ndet"] == len(positive) == 14 and mixed["nneg"] == 2 and mixed["bands"]["ztfg"]["nneg"] == 2
    assert mixed["first_detection"] == min(dp.time for dp in positive) > min(dp.time for dp in points)
    for band, entry in mixed["bands"].items():
        peak = max((dp for dp in positive if dp.band == band), key=lambda dp: dp.flux)
        assert (entry["peak_flux"], entry["peak_mag"], entry["peak_time"]) == (peak.flux, peak.mag, peak.time)


def test_plot_in_magnitudes_leaves_out_negative_subtractions_and_says_so(store: Store, tmp_path: Path) -> None:
    figure = api.plot_light_curve(store, "ZTF20acunklg")
    [axes] = figure.axes
    assert axes.get_ylabel() == "magnitude (AB)" and axes.yaxis_inverted()
    labels = axes.get_legend_handles_labels()[1]
    assert labels == ["ztfg upper limits (1)", "ztfr upper limits (3)"]  # no empty "ztfr (0)", no negative points
    assert [text.get_text() for text in axes.texts] == [
        "3 points with flux <= 0 (fainter than the reference) not drawn; plot in flux to see them"]
    plotted = [line for line in axes.get_lines() if len(line.get_ydata())]
    assert plotted == []  # only the limits' scatter collections carry data
    figure.savefig(tmp_path / "mag.png")
    assert (tmp_path / "mag.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_in_flux_draws_negative_subtractions_below_zero(store: Store, tmp_path: Path) -> None:
    figure = api.plot_light_curve(store, "ZTF18acruwxq", flux=True)
    [axes] = figure.axes
    assert axes.get_ylabel() == "flux (zp = 25 AB)" and not axes.yaxis_inverted()
    handles, labels = axes.get_legend_handles_labels()
    assert set(labels) == {"ztfg (3)", "ztfg negative (2)", "ztfr (11)", "ztfg upper limits (11)", "ztfr upper limits (8)"}
    negative = handles[labels.index("ztfg negative (2)")].lines[0]
    assert negative.get_markerfacecolor() == "none" and all(y < 0 for y in negative.get_ydata())
    assert not axes.texts
    figure.savefig(tmp_path / "flux.png")
    assert (tmp_path / "flux.png").read_bytes()[:4] == b"\x89PNG"
