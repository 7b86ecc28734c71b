"""T1: which kinds of LSST datapoints form a channel's state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from ampel_core.models import DataPoint
from ampel_core.units import Combiner
from ampel_lsst.datapoints import TAG_DETECTION, TAG_FORCED, TAG_OBJECT, TAG_UPPER_LIMIT

__all__ = ["LSSTPhotometryCombiner"]


class LSSTPhotometryCombiner(Combiner):
    """A state of the chosen kinds: detections (``LSST_DP``), forced photometry (``LSST_FP``),
    upper limits (``LSST_UL``) and diaObject datapoints (``LSST_OBJ``). Datapoints of other surveys
    (no ``LSST`` kind tag) are kept.

    With ``dia_object: latest`` only the newest diaObject datapoint (by time, then id) is kept, so
    the state is not a superset of earlier states; use ``all`` or ``none`` where states must only grow.
    """

    detections: bool = Field(True, description="Keep diaSources (LSST_DP).")
    forced: bool = Field(True, description="Keep forced photometry (LSST_FP).")
    upper_limits: bool = Field(True, description="Keep non-detection limits (LSST_UL).")
    dia_object: Literal["none", "latest", "all"] = Field("none", description="Which diaObject datapoints (LSST_OBJ) to keep.")

    def combine(self, datapoints: Sequence[DataPoint]) -> list[int]:
        keep = {TAG_DETECTION: self.detections, TAG_FORCED: self.forced, TAG_UPPER_LIMIT: self.upper_limits,
                TAG_OBJECT: self.dia_object == "all"}
        chosen = []
        for dp in datapoints:
            kinds = [keep[tag] for tag in dp.tags if tag in keep]
            if not kinds or all(kinds):
                chosen.append(dp.id)
        if self.dia_object == "latest":
            objects = [dp for dp in datapoints if TAG_OBJECT in dp.tags]
            if objects:
                chosen.append(max(objects, key=lambda dp: (dp.time, dp.id)).id)
        return chosen
