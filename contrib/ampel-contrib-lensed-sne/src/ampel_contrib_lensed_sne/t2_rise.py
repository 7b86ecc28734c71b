"""T2: rise and decline rates of a light curve, for ampel-contrib-lensed-sne."""

from typing import Any

import numpy as np
from ampel_core.units import StateUnit
from ampel_core.views import StateView
from pydantic import Field


class T2LensedSNRise(StateUnit):
    """How fast a transient brightens or fades, from the recent detections of each band.

    Detections with a negative difference flux are left out (they have no magnitude; see the
    core's docs/contributing/write-a-unit.md). Per band, the slope in magnitudes per day of a
    straight line through the detections of the last
    ``window`` days (negative: brightening); the trend is the mean slope of the bands that have one,
    ``"rising"`` below ``-min_rate``, ``"fading"`` above ``min_rate``, ``"flat"`` in between, and
    None without any slope. Also the peak: the brightest detection of the whole light curve.

    Output: ``{"ndet": int, "peak_mag": float, "peak_time": float (MJD), "peak_band": str,
    "bands": {band: {"ndet": int, "slope": float | None}}, "trend": str | None}``; the peak fields
    are None when no detection has a positive flux and a magnitude. Never NaN: missing values are None.
    """

    window: float = Field(10.0, gt=0, description="Days before the last detection used for the slopes.")
    min_points: int = Field(2, ge=2, description="Detections a band needs in the window for a slope.")
    min_rate: float = Field(0.02, ge=0, description="Mean slope (mag/day) beyond which the trend is not flat.")

    def process(self, state: StateView) -> dict[str, Any]:
        table = state.table()  # detections, sorted by time, with the standard photometry columns
        # a negative difference flux (ZTF isdiffpos f) is a fading below the reference, not a
        # brightening, and its mag is not a brightness: keep positive fluxes only
        table = table[np.isfinite(table["mag"]) & (table["flux"] > 0)]
        if len(table) == 0:
            return {"ndet": 0, "peak_mag": None, "peak_time": None, "peak_band": None, "bands": {}, "trend": None}
        peak = table[int(np.argmin(table["mag"]))]
        recent = table[table["time"] >= table["time"].max() - self.window]
        bands: dict[str, dict[str, Any]] = {}
        for band in sorted(set(recent["band"])):
            rows = recent[recent["band"] == band]
            slope = None
            if len(rows) >= self.min_points and np.ptp(rows["time"]) > 0:
                slope = float(np.polyfit(rows["time"], rows["mag"], 1)[0])
            bands[str(band)] = {"ndet": len(rows), "slope": slope}
        return {"ndet": len(table), "peak_mag": float(peak["mag"]), "peak_time": float(peak["time"]),
                "peak_band": str(peak["band"]), "bands": bands, "trend": self.trend(bands)}

    def trend(self, bands: dict[str, dict[str, Any]]) -> str | None:
        slopes = [band["slope"] for band in bands.values() if band["slope"] is not None]
        if not slopes:
            return None
        mean = sum(slopes) / len(slopes)
        return "rising" if mean < -self.min_rate else "fading" if mean > self.min_rate else "flat"
