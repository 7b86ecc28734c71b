"""T0 filters for Rubin/LSST and ELAsTiCC alerts (as decoded by `ampel_lsst.format`).

Detections are the datapoints tagged ``LSST_DP`` (the triggering diaSource and prvDiaSources);
forced photometry, upper limits and the diaObject are not counted as detections.
"""

from __future__ import annotations

from pydantic import Field

from ampel_core.models import Alert, DataPoint, LazyDataPoints
from ampel_core.units import AlertFilter, Reject
from ampel_lsst.datapoints import TAG_DETECTION, TAG_SOLAR_SYSTEM

__all__ = ["SimpleLSSTFilter", "detections", "signal_to_noise"]


def detections(alert: Alert) -> list[DataPoint]:
    """The alert's detections (diaSources), trigger first; of `ampel_lsst.format`'s alerts without
    building their other datapoints (every diaSource is among their `LazyDataPoints.detections`)."""
    points = alert.datapoints
    return [dp for dp in (points.detections if isinstance(points, LazyDataPoints) else points) if TAG_DETECTION in dp.tags]


def signal_to_noise(datapoint: DataPoint) -> float | None:
    """The survey's ``snr`` of a diaSource, else ``|flux / flux_err|``; None when neither is known."""
    snr = datapoint.extra.get("snr")
    if snr is not None:
        return float(snr)
    if datapoint.flux is not None and datapoint.flux_err:
        return abs(datapoint.flux / datapoint.flux_err)
    return None


class SimpleLSSTFilter(AlertFilter):
    """Accept alerts whose triggering diaSource is reliable and significant and whose detection
    history is long enough. Every cut is off (None) or permissive by default.

    Reject codes: -1 reliability below ``min_reliability``, -2 no reliability but
    ``require_reliability``, -3 S/N below ``min_snr``, -4 negative trigger flux with
    ``positive_only``, -5 fewer than ``min_detections``, -6 fewer than ``min_bands``, -7 detection
    history outside ``min_time_span``/``max_time_span``, -8 solar-system alert with
    ``reject_solar_system``.
    """

    min_reliability: float | None = Field(None, ge=0, le=1, description=(
        "Minimum 'reliability' (real/bogus score, Rubin schemas >= 7) of the triggering diaSource."))
    require_reliability: bool = Field(False, description=(
        "Reject alerts whose trigger has no reliability (ELAsTiCC has none); otherwise the cut is skipped."))
    min_snr: float | None = Field(None, description="Minimum S/N of the trigger: its 'snr', else |psfFlux/psfFluxErr|.")
    positive_only: bool = Field(False, description="Reject triggers with a negative (or no) difference flux.")
    min_detections: int = Field(1, ge=1, description="Minimum number of detections (diaSources) in the alert.")
    min_bands: int = Field(1, ge=1, description="Minimum number of distinct bands among the detections.")
    min_time_span: float | None = Field(None, ge=0, description="Minimum days between first and last detection.")
    max_time_span: float | None = Field(None, ge=0, description="Maximum days between first and last detection.")
    reject_solar_system: bool = Field(False, description="Reject alerts associated with a solar-system object.")

    def process(self, alert: Alert) -> bool | Reject:
        trigger = alert.trigger
        if self.reject_solar_system and TAG_SOLAR_SYSTEM in trigger.tags:
            return Reject(-8, f"solar-system object {alert.extra.get('ssObjectId')}")
        if self.min_reliability is not None:
            reliability = trigger.extra.get("reliability")
            if reliability is None:
                if self.require_reliability:
                    return Reject(-2, "trigger has no reliability")
            elif reliability < self.min_reliability:
                return Reject(-1, f"reliability {reliability:.3g} < {self.min_reliability}")
        if self.min_snr is not None:
            snr = signal_to_noise(trigger)
            if snr is None or snr < self.min_snr:
                return Reject(-3, f"S/N {snr if snr is None else round(snr, 3)} < {self.min_snr}")
        if self.positive_only and (trigger.flux is None or trigger.flux <= 0):
            return Reject(-4, f"trigger flux {trigger.flux} <= 0")
        found = detections(alert)
        if len(found) < self.min_detections:
            return Reject(-5, f"{len(found)} detections < {self.min_detections}")
        bands = {dp.band for dp in found if dp.band}  # a null band is no band
        if len(bands) < self.min_bands:
            return Reject(-6, f"{len(bands)} bands < {self.min_bands}")
        if self.min_time_span is not None or self.max_time_span is not None:
            times = [dp.time for dp in found]
            span = max(times) - min(times)
            if self.min_time_span is not None and span < self.min_time_span:
                return Reject(-7, f"detection history {span:.3f} d < {self.min_time_span} d")
            if self.max_time_span is not None and span > self.max_time_span:
                return Reject(-7, f"detection history {span:.3f} d > {self.max_time_span} d")
        return True
