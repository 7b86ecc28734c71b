"""Positions on the sky: where a stock is, its HEALPix index, and the index ranges a cone covers.

A stock's position is the one its latest ingested alert gives (`alert_position`): the alert's
``extra`` ``ra`` and ``dec`` (ZTF copies them there from the triggering candidate), else those of
the triggering datapoint's ``extra`` (``ra`` and ``dec``, or Rubin's ``decl``), in degrees (ICRS).
Stores keep it with a nested HEALPix index of order `ORDER` (`healpix_indexes`), so a cone search
(`cone_ranges`) reads a few index ranges and only then measures distances (`angular_distance`).
astropy-healpix is imported inside the functions: configuration builds import unit modules and
must not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ampel_core.models import Alert

__all__ = ["MAX_CONE_RADIUS", "ORDER", "alert_position", "angular_distance", "cone_ranges", "healpix_indexes"]

ORDER = 16  # nested HEALPix order of stored indexes: nside 65536, pixels of 3.2 arcsec
MAX_CONE_RADIUS = 5.0  # degrees: the largest cone a store searches


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def alert_position(alert: Alert) -> tuple[float, float] | None:
    """(ra, dec) in degrees of the alert (see the module docstring); None when it gives none or
    gives one outside the sky (dec beyond ±90°)."""
    sources = [alert.extra]
    if alert.datapoints:
        sources.append(alert.trigger.extra)
    for fields in sources:
        ra, dec = _finite(fields.get("ra")), _finite(fields.get("dec", fields.get("decl")))
        if ra is not None and dec is not None and -90.0 <= dec <= 90.0:
            return ra % 360.0, dec
    return None


def healpix_indexes(ra: Sequence[float], dec: Sequence[float]) -> list[int]:
    """The nested HEALPix pixels of order `ORDER` that hold the positions (degrees), in one call."""
    import astropy.units as u
    import numpy as np
    from astropy_healpix import HEALPix

    if not len(ra):
        return []
    grid = HEALPix(nside=2**ORDER, order="nested")
    return [int(i) for i in grid.lonlat_to_healpix(np.mod(np.asarray(ra, dtype=float), 360) * u.deg,
                                                   np.asarray(dec, dtype=float) * u.deg)]


def cone_ranges(ra: float, dec: float, radius: float) -> list[tuple[int, int]]:
    """Half-open ranges [start, end) of order-`ORDER` nested indexes that together hold every
    position within ``radius`` degrees of (ra, dec): the descendants of the pixels of a coarser
    order (about the radius in size) that cover the circle, neighbours merged. The ranges hold
    positions outside the cone too: measure with `angular_distance`."""
    import astropy.units as u
    import numpy as np
    from astropy_healpix import HEALPix

    if not 0 <= radius <= MAX_CONE_RADIUS:
        raise ValueError(f"cone radius {radius} degrees: it must be between 0 and {MAX_CONE_RADIUS}")
    base_pixel = math.degrees(math.sqrt(4 * math.pi / 12))  # the size of an order-0 pixel
    level = min(ORDER, max(0, math.floor(math.log2(base_pixel / max(radius, 1e-9)))))
    grid = HEALPix(nside=2**level, order="nested")
    # cone_search_lonlat can miss a pixel the circle only grazes: widen the circle by two pixel sizes
    widened = min(radius + 2 * grid.pixel_resolution.to_value(u.deg), 180.0)
    pixels = np.unique(grid.cone_search_lonlat((ra % 360) * u.deg, dec * u.deg, widened * u.deg)).astype(np.int64)
    shift = 2 * (ORDER - level)
    starts, ends = pixels << shift, (pixels + 1) << shift
    breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1
    return list(zip(starts[np.r_[0, breaks]].tolist(), ends[np.r_[breaks - 1, len(ends) - 1]].tolist(), strict=True))


def angular_distance(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance in degrees between two positions in degrees (haversine, exact at
    small separations)."""
    phi1, phi2 = math.radians(dec1), math.radians(dec2)
    half = math.sin((phi2 - phi1) / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(ra2 - ra1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(half))))
