"""Survey-neutral units that make the core useful alone."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from ampel_core.models import Alert
from ampel_core.tables import Format, print_table
from ampel_core.units import JSON, AlertFilter, ReactUnit, Reject, StateUnit
from ampel_core.views import StateView, StockView, lookup

__all__ = ["AcceptAll", "MinDetectionsFilter", "T2LightCurveSummary", "T3JsonExport", "T3TableReport", "lookup"]


class AcceptAll(AlertFilter):
    """Accept every alert (a channel that records everything its rights allow)."""

    def process(self, alert: Alert) -> bool:
        return True


class MinDetectionsFilter(AlertFilter):
    """Accept alerts with at least ``min_detections`` detections (no upper limits or forced
    photometry) in at least ``min_bands`` bands."""

    min_detections: int = Field(1, ge=1, description="Minimum number of detections in the alert.")
    min_bands: int = Field(1, ge=1, description="Minimum number of distinct bands among them.")

    def process(self, alert: Alert) -> bool | Reject:
        detections = alert.detections
        if len(detections) < self.min_detections:
            return Reject(-1, f"{len(detections)} detections < {self.min_detections}")
        if len({dp.band for dp in detections}) < self.min_bands:
            return Reject(-2, f"fewer than {self.min_bands} bands")
        return True


class T2LightCurveSummary(StateUnit):
    """Summary of a state's light curve, in flux space (see docs/contributing/write-a-unit.md,
    "Negative subtractions").

    A difference-image detection with a negative flux (ZTF ``isdiffpos`` = ``f``; a negative
    Rubin ``psfFlux``) means the source is *fainter* than in the reference image: it is not a
    brightening, and its ``mag`` (ZTF: the magnitude of ``|flux|``) is not a brightness. Such
    detections (flux <= 0) are counted apart in ``nneg`` and take no part in the peak, the first
    and last detection or the duration.

    Output: ``ndet`` (detections with flux > 0), ``nneg`` (detections with flux <= 0), ``nlim``
    (upper limits), ``nforced`` (forced photometry), ``first_detection`` and ``last_detection``
    (MJD, of the positive detections; None without one), ``duration`` (days between them, 0.0
    without), and ``bands``: per band the same counts and the peak, the positive detection of
    largest flux: ``peak_flux`` (in the datapoint's ``zp``/``zpsys`` system), ``peak_mag``,
    ``peak_time`` (MJD); all three None when the band has no positive detection.
    """

    def process(self, state: StateView) -> JSON:
        bands: dict[str, dict[str, Any]] = {}
        positive = []
        for dp in state.datapoints:
            if not dp.band:
                continue
            entry = bands.setdefault(dp.band, {"ndet": 0, "nneg": 0, "nlim": 0, "nforced": 0, "peak_flux": None,
                                               "peak_mag": None, "peak_time": None})
            if not dp.is_detection:
                entry["nlim" if dp.upper_limit else "nforced"] += 1
            elif dp.flux is not None and dp.flux <= 0:
                entry["nneg"] += 1
            else:
                entry["ndet"] += 1
                positive.append(dp)
                if entry["peak_flux"] is None or dp.flux > entry["peak_flux"]:
                    entry.update(peak_flux=dp.flux, peak_time=dp.time, peak_mag=dp.mag)
        times = [dp.time for dp in positive]
        return {
            "ndet": len(positive),
            "nneg": sum(entry["nneg"] for entry in bands.values()),
            "nlim": sum(entry["nlim"] for entry in bands.values()),
            "nforced": sum(entry["nforced"] for entry in bands.values()),
            "first_detection": min(times) if times else None,
            "last_detection": max(times) if times else None,
            "duration": (max(times) - min(times)) if times else 0.0,
            "bands": dict(sorted(bands.items())),
        }


class T3TableReport(ReactUnit):
    """A table of the selected stocks, one row each, printed to standard output (``format``:
    table, csv or json; see `ampel_core.tables` — names are never cut) and/or written to a file
    whose format follows its extension (.csv, .ecsv, .parquet, .fits; via astropy)."""

    columns: dict[str, str] = Field(
        default_factory=lambda: {"stock": "name", "ndet": "T2LightCurveSummary.ndet",
                                 "first": "T2LightCurveSummary.first_detection",
                                 "last": "T2LightCurveSummary.last_detection"},
        description="Column name -> value path ('name', 'id', 'tags' or '<Unit>.<key>...' of a T2 result).")
    output: str | None = Field(None, description="File to write (format from the extension); none: no file.")
    show: bool = Field(True, description="Print the table to standard output.")
    format: Format = Field("table", description="How to print it: table (for people), csv or json (for programs).")
    max_rows: int = Field(50, ge=0, description="Rows printed as a table (csv and json print all; all rows go to the file).")

    def rows(self, views: Sequence[StockView]) -> list[dict[str, Any]]:
        return [{name: lookup(view, path) for name, path in self.columns.items()} for view in views]

    def process(self, views: Sequence[StockView]) -> JSON:
        rows = self.rows(views)
        if self.output:
            self._write(rows)
        if self.show:
            self._print(rows)
        return {"rows": len(rows), "columns": list(self.columns), "output": self.output, "table": rows}

    def _write(self, rows: list[dict[str, Any]]) -> None:
        from astropy.table import Table

        def column(name: str) -> list[Any]:
            values = [row[name] for row in rows]
            if all(v is None or isinstance(v, (int, float)) for v in values):
                return [math.nan if v is None else v for v in values]
            return ["" if v is None else str(v) for v in values]

        table = Table({name: column(name) for name in self.columns}) if rows else Table(names=list(self.columns))
        Path(self.output).parent.mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
        table.write(self.output, overwrite=True)

    def _print(self, rows: list[dict[str, Any]]) -> None:
        shown = rows[: self.max_rows] if self.format == "table" else rows
        title = f"{len(rows)} stocks" + (f" (first {len(shown)})" if len(shown) < len(rows) else "")
        print_table(title, list(self.columns), [[row[name] for name in self.columns] for row in shown], self.format,
                    key_columns=[name for name, path in self.columns.items() if path in ("name", "id")])


class T3JsonExport(ReactUnit):
    """Write the selected stocks (names, tags, datapoint count, latest results) as one JSON file."""

    output: str = Field(description="Path of the JSON file to write.")

    def process(self, views: Sequence[StockView]) -> JSON:
        from ampel_core.provenance import canonical_json

        stocks = [{"id": v.id, "names": list(v.names), "tags": list(v.tags), "channels": list(v.channels),
                   "datapoints": len(v.datapoints), "latest_state": v.latest_state, "results": dict(v.results)}
                  for v in views]
        Path(self.output).parent.mkdir(parents=True, exist_ok=True)
        Path(self.output).write_bytes(canonical_json({"stocks": stocks}))
        return {"rows": len(stocks), "output": self.output}
