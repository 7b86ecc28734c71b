"""T3: a ranked report of the selected objects, for ampel-contrib-lensed-sne."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ampel_core.provenance import canonical_json
from ampel_core.units import ReactUnit
from ampel_core.views import StockView
from pydantic import Field


class T3LensedSNReport(ReactUnit):
    """One row per selected object, most detections first: its name, number of detections, last
    detection (MJD) and the ``result_keys`` of the latest result of ``t2_unit`` (None where there is
    none).

    The rows are the report AMPEL stores with the run; with ``output`` they are also written to that
    JSON file.
    """

    t2_unit: str = Field("T2LensedSNRise", description="T2 unit whose latest result is reported.")
    result_keys: list[str] = Field(default_factory=lambda: ["peak_mag", "trend"],
                                   description="Keys of that result to report.")
    output: str | None = Field(None, description="JSON file to write the rows to; none: no file.")

    def process(self, views: Sequence[StockView]) -> dict[str, Any]:
        rows = [self.row(view) for view in views]
        rows.sort(key=lambda row: (-row["ndet"], row["stock"]))
        if self.output:
            Path(self.output).parent.mkdir(parents=True, exist_ok=True)
            Path(self.output).write_bytes(canonical_json({"rows": rows}))
        return {"stocks": len(rows), "output": self.output, "rows": rows}

    def row(self, view: StockView) -> dict[str, Any]:
        detections = [dp.time for dp in view.datapoints if not dp.upper_limit]
        result = view.results.get(self.t2_unit) or {}
        return {"stock": view.name, "ndet": len(detections), "last_detection": max(detections, default=None),
                **{key: result.get(key) for key in self.result_keys}}
