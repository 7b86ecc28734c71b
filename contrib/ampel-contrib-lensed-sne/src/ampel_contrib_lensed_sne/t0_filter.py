"""T0: LensedSNFilter, the candidate filter of the lensed-supernova search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ampel_catalogs.units import CatalogVetoFilter, VetoCatalog
from ampel_core.models import Alert
from ampel_core.units import AlertFilter, Reject
from ampel_ztf.filters import ZTFDecentFilter
from pydantic import Field, PrivateAttr

__all__ = ["LensedSNFilter"]


class LensedSNFilter(AlertFilter):
    """Accept extragalactic-looking, real, positive transients seen often enough, away from known
    variable stars and AGN.

    In order (reject codes):
    - ampel-plugin-ztf's `ZTFDecentFilter` with ``decent`` as its config: positive subtraction,
      real/bogus, image quality, no solar-system object, no PS1 star at the position, no bright star
      nearby, galactic latitude (its codes, -1 to -10);
    - at least ``min_positive_detections`` positive detections (flux > 0) in the alert, over at
      least ``min_bands`` bands (-20: a colour needs two bands);
    - ampel-plugin-catalogs' `CatalogVetoFilter` over ``veto`` (variable stars, AGN/QSO, YSOs), when
      any is given (-100 - i for the i-th veto catalogue, -200 when the trigger has no position).
    The reason of the rejection says which test failed.
    """

    decent: dict[str, Any] = Field(
        default_factory=lambda: {"min_ndet": 1, "min_rb": 0.3, "min_gal_lat": 10.0},
        description="Config of ZTFDecentFilter (ampel-plugin-ztf), run first.")
    min_positive_detections: int = Field(3, ge=1, description="Positive detections (flux > 0) the alert holds.")
    min_bands: int = Field(2, ge=1, description="Bands among them.")
    veto: list[VetoCatalog] = Field(
        default_factory=list, description="Catalogues of known variables/AGN (CatalogVetoFilter's `catalogs`).")

    _decent: ZTFDecentFilter = PrivateAttr()
    _veto: CatalogVetoFilter | None = PrivateAttr(None)

    def model_post_init(self, context: Any) -> None:
        self._decent = ZTFDecentFilter(**self.decent)
        self._veto = CatalogVetoFilter(catalogs=self.veto) if self.veto else None

    def resources(self) -> dict[str, str | Path]:
        """The veto catalogues' files (see CatalogVetoFilter): a changed catalogue is a new trace."""
        return self._veto.resources() if self._veto else {}

    def process(self, alert: Alert) -> bool | Reject:
        verdict = self._decent.process(alert)
        if verdict is not True:
            return verdict if isinstance(verdict, Reject) else Reject(-11, "ZTFDecentFilter rejected")
        positive = [dp for dp in alert.detections if dp.flux is not None and dp.flux > 0]
        bands = {dp.band for dp in positive}
        if len(positive) < self.min_positive_detections or len(bands) < self.min_bands:
            return Reject(-20, f"{len(positive)} positive detections in {len(bands)} bands "
                               f"(need {self.min_positive_detections} in {self.min_bands})")
        if self._veto is not None:
            vetoed = self._veto.process(alert)
            if isinstance(vetoed, Reject):
                code = -200 if vetoed.code == -100 else -100 + vetoed.code + 1
                return Reject(code, vetoed.reason)
        return True
