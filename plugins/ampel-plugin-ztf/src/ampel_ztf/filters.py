"""T0 filters for ZTF alerts.

Both read the triggering candidate's raw fields (``alert.trigger.extra``, see `ampel_ztf.alerts`).
ZTF writes -999 (or null) where a catalogue has no counterpart (``ssdistnr``, ``distpsnr1``,
``sgscore1``, ``neargaiabright``); such a value never vetoes. A field an older schema lacks (e.g.
``drb`` before 3.3) skips its check. Neither filter raises on odd alerts.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal, TypeGuard

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ampel_core.models import Alert
from ampel_core.units import AlertFilter, Reject

__all__ = ["OPERATORS", "Criterion", "ZTFAttributeFilter", "ZTFDecentFilter", "galactic_latitude"]

# the north galactic pole and the galactic longitude of the north celestial pole (J2000, degrees)
_NGP_RA, _NGP_DEC, _NCP_L = 192.85948, 27.12825, 122.93192
_NUMBERS = frozenset((int, float))
#: the fields of PS1's three nearest sources: distance, star/galaxy score, g and r magnitude
_PS1 = tuple((f"distpsnr{i}", f"sgscore{i}", f"sgmag{i}", f"srmag{i}") for i in (1, 2, 3))


@lru_cache(maxsize=4096)  # every channel's filter asks for the same alert's latitude
def galactic_latitude(ra: float, dec: float) -> float:
    """Galactic latitude b (degrees) of equatorial J2000 ``ra``, ``dec`` (degrees)."""
    ra, dec = math.radians(ra), math.radians(dec)
    pole_dec = math.radians(_NGP_DEC)
    sin_b = (math.sin(dec) * math.sin(pole_dec)
             + math.cos(dec) * math.cos(pole_dec) * math.cos(ra - math.radians(_NGP_RA)))
    return math.degrees(math.asin(max(-1.0, min(1.0, sin_b))))


def _known(value: Any) -> TypeGuard[float]:
    """A number that is present (ZTF writes -999 or null for 'no counterpart'; NaN is absent too)."""
    if type(value) not in _NUMBERS and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        return False  # (the type test first: it is the quick answer for what Avro decodes)
    return bool(value > -998.999 and value == value)


class ZTFDecentFilter(AlertFilter):
    """Accept real-looking, new, extragalactic-looking transients; every threshold is a field.

    Checks, in order (reject code in brackets): positive subtraction [-1]; detections in the
    alert [-2]; time span of those detections [-3]; real/bogus ``rb`` and deep real/bogus ``drb``
    [-4]; image quality ``fwhm``, ``elong``, ``magdiff``, ``nbad`` [-5]; a known solar-system
    object within ``min_sso_dist`` [-6]; a PS1 point source at the position (``sgscore1``,
    ``distpsnr1``) [-7]; PS1 confusion: a star and a galaxy both close [-8]; a bright star nearby
    (Gaia ``neargaiabright``/``maggaiabright``, or PS1 ``srmag``/``sgmag`` of a star) [-9];
    galactic latitude [-10].
    """

    require_positive: bool = Field(True, description="Reject negative subtractions (isdiffpos f/0).")
    min_ndet: int = Field(2, ge=1, description="Minimum detections in the alert (trigger included, no limits).")
    min_tspan: float = Field(0.0, ge=0, description="Minimum days between first and last detection in the alert.")
    max_tspan: float = Field(1e4, ge=0, description="Maximum days between first and last detection in the alert.")
    min_rb: float = Field(0.3, ge=0, le=1, description="Minimum real/bogus score rb.")
    min_drb: float = Field(0.0, ge=0, le=1, description="Minimum deep real/bogus score drb (schema >= 3.3).")
    max_fwhm: float = Field(5.5, gt=0, description="Maximum FWHM of the detection [pixels].")
    max_elong: float = Field(1.4, gt=0, description="Maximum elongation (aimage/bimage).")
    max_magdiff: float = Field(1.0, description="Maximum |magap - magpsf| [mag].")
    max_nbad: int = Field(0, ge=0, description="Maximum bad pixels within 5x5 pixels.")
    min_sso_dist: float = Field(20.0, ge=0, description="Reject a known solar-system object closer than this [arcsec].")
    ps1_sgveto_rad: float = Field(1.0, ge=0, description="Radius of the PS1 star veto [arcsec].")
    ps1_sgveto_th: float = Field(0.8, ge=0, le=1, description="sgscore above which a PS1 source is a star.")
    ps1_confusion_rad: float = Field(3.0, ge=0, description="Radius of the PS1 star/galaxy confusion check [arcsec].")
    ps1_confusion_sg_tol: float = Field(0.1, ge=0, le=0.5, description="sgscore > 1-tol: star; < tol: galaxy.")
    bright_star_rad: float = Field(20.0, ge=0, description="Reject a bright star closer than this [arcsec].")
    bright_star_max_mag: float = Field(12.0, description="Stars brighter than this (G, or PS1 g/r) are bright.")
    min_gal_lat: float = Field(7.0, ge=0, le=90, description="Minimum |galactic latitude| [degrees].")

    def process(self, alert: Alert) -> bool | Reject:
        c = alert.trigger.extra
        if self.require_positive and c.get("isdiffpos") not in ("t", "1"):
            return Reject(-1, "negative subtraction")
        times = [dp.time for dp in alert.detections]
        if len(times) < self.min_ndet:
            return Reject(-2, f"{len(times)} detections < {self.min_ndet}")
        span = max(times) - min(times)
        if not self.min_tspan <= span <= self.max_tspan:
            return Reject(-3, f"detections span {span:.3g} d, not in [{self.min_tspan}, {self.max_tspan}]")
        rb, drb = c.get("rb"), c.get("drb")
        if (rb is not None and rb < self.min_rb) or (drb is not None and drb < self.min_drb):
            return Reject(-4, f"rb {rb}, drb {drb} below {self.min_rb}, {self.min_drb}")
        quality = self._bad_quality(c)
        if quality:
            return Reject(-5, quality)
        sso = c.get("ssdistnr")
        if _known(sso) and 0 <= sso < self.min_sso_dist:
            return Reject(-6, f"solar-system object {sso:.3g}\" away")
        distance, score = c.get("distpsnr1"), c.get("sgscore1")
        if _known(distance) and _known(score) and distance < self.ps1_sgveto_rad and score > self.ps1_sgveto_th:
            return Reject(-7, f"PS1 star (sgscore {score:.2f}) {distance:.2f}\" away")
        if self._ps1_confused(c):
            return Reject(-8, "PS1 star and galaxy both within the confusion radius")
        bright = self._bright_star(c)
        if bright:
            return Reject(-9, bright)
        ra, dec = c.get("ra"), c.get("dec")
        if _known(ra) and _known(dec) and math.isfinite(ra) and math.isfinite(dec):
            latitude = galactic_latitude(ra, dec)
            if abs(latitude) < self.min_gal_lat:
                return Reject(-10, f"galactic latitude {latitude:.1f} deg")
        return True

    def _bad_quality(self, c: dict[str, Any]) -> str | None:
        fwhm, elong, magdiff, nbad = c.get("fwhm"), c.get("elong"), c.get("magdiff"), c.get("nbad")
        if fwhm is not None and fwhm > self.max_fwhm:
            return f"fwhm {fwhm:.3g} > {self.max_fwhm}"
        if elong is not None and elong > self.max_elong:
            return f"elong {elong:.3g} > {self.max_elong}"
        if magdiff is not None and abs(magdiff) > self.max_magdiff:
            return f"|magdiff| {abs(magdiff):.3g} > {self.max_magdiff}"
        if nbad is not None and nbad > self.max_nbad:
            return f"nbad {nbad} > {self.max_nbad}"
        return None

    def _ps1_confused(self, c: dict[str, Any]) -> bool:
        scores = [score for distance_key, score_key, _, _ in _PS1 if _known(distance := c.get(distance_key))
                  and distance < self.ps1_confusion_rad and _known(score := c.get(score_key))]
        tolerance = self.ps1_confusion_sg_tol
        return any(s > 1 - tolerance for s in scores) and any(s < tolerance for s in scores)

    def _bright_star(self, c: dict[str, Any]) -> str | None:
        distance, magnitude = c.get("neargaiabright"), c.get("maggaiabright")
        if _known(distance) and distance < self.bright_star_rad and (
                not _known(magnitude) or magnitude <= self.bright_star_max_mag):
            return f"Gaia bright star {distance:.1f}\" away"
        for distance_key, score_key, g_key, r_key in _PS1:
            distance, score = c.get(distance_key), c.get(score_key)
            if not (_known(distance) and _known(score) and distance < self.bright_star_rad and score > self.ps1_sgveto_th):
                continue
            magnitudes: list[float] = [m for m in (c.get(g_key), c.get(r_key)) if _known(m) and m > 0]
            if magnitudes and min(magnitudes) <= self.bright_star_max_mag:
                return f"PS1 bright star ({min(magnitudes):.1f} mag) {distance:.1f}\" away"
        return None


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
    "in": lambda value, allowed: value in allowed, "not in": lambda value, allowed: value not in allowed,
}


class Criterion(BaseModel):
    """``attribute operator value``: ``attribute`` is a candidate field (``rb``, ``magpsf`` ...) or
    ``alert.<key>`` for an alert-level field (``alert.schemavsn``, broker annotations). ``exists``
    and ``missing`` take no value. A missing attribute fails every operator but ``missing``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str
    operator: Literal["<", "<=", ">", ">=", "==", "!=", "in", "not in", "exists", "missing"]
    value: Any = None

    @model_validator(mode="after")
    def _list_for_in(self) -> Criterion:
        if self.operator in ("in", "not in") and not isinstance(self.value, list):
            raise ValueError(f"'{self.operator}' needs a list value, got {self.value!r}")
        return self

    def holds(self, alert: Alert) -> bool:
        if self.attribute.startswith("alert."):
            value = alert.extra.get(self.attribute[6:])
        else:
            value = alert.trigger.extra.get(self.attribute)
        if self.operator in ("exists", "missing"):
            return (value is not None) == (self.operator == "exists")
        if value is None:
            return False
        try:
            return bool(OPERATORS[self.operator](value, self.value))
        except TypeError:  # e.g. a string compared with a number: the criterion does not hold
            return False

    def __str__(self) -> str:
        return f"{self.attribute} {self.operator}" + ("" if self.operator in ("exists", "missing") else f" {self.value!r}")


class ZTFAttributeFilter(AlertFilter):
    """Accept alerts whose fields meet ``criteria`` (all of them, or any with ``match: any``).

    Example: ``{criteria: [{attribute: rb, operator: ">=", value: 0.5},
    {attribute: fid, operator: in, value: [1, 2]}]}``. Rejects with code -1 naming the first
    failed criterion (``all``) or -2 (``any``: none held).
    """

    criteria: list[Criterion] = Field(min_length=1, description="Conditions on candidate or alert fields.")
    match: Literal["all", "any"] = Field("all", description="Accept when all criteria hold, or any.")

    def process(self, alert: Alert) -> bool | Reject:
        if self.match == "any":
            return True if any(c.holds(alert) for c in self.criteria) else Reject(-2, "no criterion holds")
        for criterion in self.criteria:
            if not criterion.holds(alert):
                return Reject(-1, f"not {criterion}")
        return True
