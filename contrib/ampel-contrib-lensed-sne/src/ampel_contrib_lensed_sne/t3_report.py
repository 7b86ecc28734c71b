"""T3: T3LensedSNReport, the ranked list of lensed-supernova candidates, with plots and provenance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeGuard

from ampel_core.provenance import canonical_json
from ampel_core.units import JSON, ReactUnit
from ampel_core.views import StockView
from pydantic import Field

__all__ = ["T3LensedSNReport", "ranking_score"]

UNIT = "T2LensedSNColours"


def ranking_score(result: JSON | None) -> float:
    """10 for a candidate, plus the number of colour cuts passed, plus tanh(combined significance / 5)
    and the magnitudes by which the fitted peak outshines a standard SN Ia at the host's redshift
    (2.5 log10 of the magnification estimate), each clipped to [-1, 1]: candidates first, then cuts
    passed, then how significant and how bright. -inf without a result."""
    if not result:
        return -math.inf
    significance = result.get("significance")
    colour = math.tanh(significance / 5) if _finite(significance) else -1.0
    magnification = (result.get("magnification") or {}).get("value")
    brighter = -1.0
    if _finite(magnification) and magnification > 0:
        brighter = max(-1.0, min(1.0, 2.5 * math.log10(magnification)))
    return 10.0 * bool(result.get("candidate")) + float(result.get("cuts_passed") or 0) + colour + brighter


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class T3LensedSNReport(ReactUnit):
    """Rank the selected stocks by `ranking_score` of their latest T2LensedSNColours result and report
    them: one row per stock (rank, score, candidate, cuts passed, significance, colours at t0,
    magnification, host, redshifts, SALT2 parameters) with the **provenance of every number**: the
    stock id, the state whose results the numbers are, and each result's id and trace id
    (``provenance``: ``{"stock", "state", "units", "results": {unit: {"result", "trace"}}}``;
    ``ampel provenance <result id>`` leads to its trace, state, datapoints and alerts). Stocks without
    a result are listed last, with a null score.

    With ``output_dir``: ``report.json`` (the rows), ``report.md`` (a table) and, for the first
    ``max_plots`` rows with a fit, ``plots/<stock name>.png``: the light curve with the fitted model
    and the phases of the colours marked.
    """

    output_dir: str | None = Field(None, description="Folder for report.json, report.md and plots/; none: no files.")
    max_plots: int = Field(20, ge=0, description="Plot the light curves of at most this many top-ranked stocks.")
    only_candidates: bool = Field(False, description="List only stocks whose result says candidate: true.")

    def process(self, views: Sequence[StockView]) -> JSON:
        rows = [self._row(view) for view in views]
        if self.only_candidates:
            rows = [row for row in rows if row["candidate"]]
        rows.sort(key=lambda row: (-(row["score"] if row["score"] is not None else -math.inf), row["stock"]))
        for rank, row in enumerate(rows, 1):
            row["rank"] = rank
        if self.output_dir:
            folder = Path(self.output_dir)
            folder.mkdir(parents=True, exist_ok=True)
            by_id = {view.id: view for view in views}
            for row in rows[: self.max_plots]:
                if row["t0"] is not None:
                    row["plot"] = self._plot(by_id[row["provenance"]["stock"]], folder / "plots")
            (folder / "report.json").write_bytes(canonical_json({"rows": rows}))
            (folder / "report.md").write_text(_markdown(rows))
        return {"stocks": len(views), "candidates": sum(bool(r["candidate"]) for r in rows),
                "output_dir": self.output_dir, "rows": rows}

    def _row(self, view: StockView) -> JSON:
        result = view.results.get(UNIT)
        fit = view.results.get("T2SNCosmoFit") or {}
        parameters = (result or {}).get("fit", {}) or {}
        score = ranking_score(result)
        at_peak = ((result or {}).get("colours") or {}).get("t0") or {}
        host = (result or {}).get("host") or {}
        magnification = (result or {}).get("magnification") or {}
        return {
            "stock": view.name, "rank": None, "score": score if math.isfinite(score) else None,
            "candidate": bool((result or {}).get("candidate")),
            "cuts_passed": (result or {}).get("cuts_passed"), "significance": (result or {}).get("significance"),
            **{f"{name}@t0": (value or {}).get("value") for name, value in at_peak.items()},
            "magnification": magnification.get("value"), "magnification_per_band": magnification.get("per_band"),
            "host": host.get("name"), "host_z": host.get("z"), "host_separation": host.get("separation"),
            "t0": (result or {}).get("t0"), "fit_z": parameters.get("z"),
            "x1": (parameters.get("parameters") or {}).get("x1"), "c": (parameters.get("parameters") or {}).get("c"),
            "reasons": (result or {}).get("reasons"), "plot": None,
            "provenance": {"stock": view.id, "state": view.latest_state,
                           "units": sorted(u for u in (UNIT, "T2SNCosmoFit", "T2HostGalaxy") if u in view.results),
                           "results": {u: {"result": ref.id, "trace": ref.trace}
                                       for u, ref in sorted(view.result_refs.items())
                                       if u in (UNIT, "T2SNCosmoFit", "T2HostGalaxy")},
                           "fit_points": fit.get("npoints")},
        }

    def _plot(self, view: StockView, folder: Path) -> str:
        """The light curve (flux, zp 25 AB) with the fitted model per band; returns the PNG's path."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
        import sncosmo
        from ampel_sncosmo.datafiles import load_bandpass, load_source, search_path

        result = view.results[UNIT]
        fit = view.results.get("T2SNCosmoFit") or {}
        table = view.table()
        folders = search_path(None)
        model = sncosmo.Model(load_source(fit.get("source", "salt2"), fit.get("source_version", "2.4"), folders).value)
        model.set(**{k: v for k, v in (fit.get("parameters") or {}).items() if k in model.param_names})
        t0 = float(result["t0"])
        times = np.linspace(t0 - 30, t0 + 60, 300)
        colours = {"ztfg": "tab:green", "ztfr": "tab:red", "ztfi": "goldenrod"}
        figure, axes = plt.subplots(figsize=(7, 4))
        for band, colour in colours.items():
            rows = table[table["band"] == band]
            if len(rows):
                scale = 10 ** (-0.4 * (np.asarray(rows["zp"]) - 25.0))
                axes.errorbar(rows["time"] - t0, np.asarray(rows["flux"]) * scale, np.asarray(rows["flux_err"]) * scale,
                              fmt="o", ms=3, color=colour, label=band)
            bandpass = load_bandpass(band, folders).value
            if model.minwave() <= bandpass.minwave() and bandpass.maxwave() <= model.maxwave():
                axes.plot(times - t0, model.bandflux(bandpass, times, zp=25.0, zpsys="ab"), color=colour)
        for phase in (-7, 0, 7):
            axes.axvline(phase, color="grey", lw=0.5, ls=":")
        axes.set(xlabel=f"days from t0 = MJD {t0:.2f}", ylabel="flux (zp 25 AB)", xlim=(-30, 60),
                 title=f"{view.name}: {result.get('cuts_passed')} cuts passed, candidate {result.get('candidate')}")
        axes.legend(fontsize="small")
        path = folder / f"{view.name}.png"
        folder.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=80)
        plt.close(figure)
        return str(path)


def _markdown(rows: list[JSON]) -> str:
    columns = ["rank", "stock", "score", "candidate", "cuts_passed", "significance", "g-r@t0", "g-i@t0", "r-i@t0",
               "magnification", "host", "host_z", "fit_z", "t0", "state"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        values = {**row, "state": (row["provenance"]["state"] or "")[:16]}
        lines.append("| " + " | ".join(_cell(values.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)
