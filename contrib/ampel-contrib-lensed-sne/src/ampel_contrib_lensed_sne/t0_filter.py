"""T0: the alert filter of ampel-contrib-lensed-sne."""

from ampel_core.models import Alert
from ampel_core.units import AlertFilter, Reject
from pydantic import Field


class LensedSNFilter(AlertFilter):
    """Accept alerts of objects seen at least ``min_detections`` times (the triggering detection and
    the alert's history) whose triggering detection is brighter than ``max_mag``.

    Rejections carry a code and a reason, stored with the alert: -1 the trigger is an upper limit,
    -2 too few detections, -3 the trigger is too faint (or has no magnitude).
    """

    min_detections: int = Field(3, ge=1, description="Detections the alert must hold, trigger included.")
    max_mag: float = Field(19.0, description="Faintest accepted magnitude of the triggering detection.")

    def process(self, alert: Alert) -> bool | Reject:
        trigger = alert.trigger
        if trigger.upper_limit:
            return Reject(-1, "the trigger is an upper limit")
        detections = sum(1 for dp in alert.datapoints if not dp.upper_limit)
        if detections < self.min_detections:
            return Reject(-2, f"{detections} detections < {self.min_detections}")
        if trigger.mag is None or trigger.mag > self.max_mag:
            return Reject(-3, f"trigger magnitude {trigger.mag} is fainter than {self.max_mag}")
        return True
