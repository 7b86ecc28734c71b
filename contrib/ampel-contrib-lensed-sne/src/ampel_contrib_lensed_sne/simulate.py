"""Simulated ZTF light curves of (lensed and unlensed) SNe Ia, for tests and benchmarks.

- **Cadence and noise** come from real ZTF alert histories (`cadences`): every epoch of an
  object's alerts (detections and upper limits) gives a time, a band and the 1-sigma noise flux of
  that image (a fifth of the flux at its 5-sigma ``diffmaglim``, zp 25 AB). A simulated season
  repeats one object's epochs, shifted by their span plus one day, until it covers the window.
- **The supernova** is SALT2 2.4 (the files shipped with ampel-plugin-sncosmo) at redshift ``z``,
  with peak absolute magnitude ``-19.3 + 0.1 N(0, 1)`` in Bessell B (AB, Planck18 distances), ``x1``
  and ``c`` given, and its flux multiplied by the magnification ``mu``. Where the model does not
  cover a band (ZTF g below 2000 A rest frame at z > 0.85) the true flux is zero: a SN Ia is
  dark in the far UV.
- **Measurements** are forced-photometry-like: every epoch, with the true flux plus Gaussian noise
  of the epoch's noise and a 2 % calibration floor. They are `DataPoint` s with the ZTF fields a
  unit reads (``ra``, ``dec``, ``diffmaglim``).
- **Lens or host galaxy** rows (`galaxy_row`) have GWGC's columns (``maj``, ``min`` in arcmin,
  ``PAHyp``, ``Dist`` in Mpc: Planck18's luminosity distance at the galaxy's redshift), so that
  `ampel_catalogs.hosts.T2HostGalaxy` finds them as it finds GWGC galaxies.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ampel_core.models import Alert, DataPoint

__all__ = ["ABSOLUTE_MAGNITUDE", "GALAXY_COLUMNS", "Cadence", "SimulatedSN", "cadences", "galaxy_row", "observe",
           "salt2_model", "simulated_event", "write_galaxy_catalog"]

ABSOLUTE_MAGNITUDE = -19.3  # Bessell B, AB, of a SN Ia with x1 = 0, c = 0
#: How ampel-plugin-catalogs reads a galaxy file with GWGC's columns (a unit's ``catalog: {file, ...}``)
GALAXY_COLUMNS: dict[str, Any] = {"ra": "RAJ2000", "dec": "DEJ2000", "id": "NED_name",
                                  "keep": ["maj", "min", "PAHyp", "Dist"]}
_ZP = 25.0


@dataclass(frozen=True)
class Cadence:
    """The epochs of one real ZTF object: MJD, band, 1-sigma noise flux (zp 25 AB)."""

    source: str
    time: tuple[float, ...]
    band: tuple[str, ...]
    noise: tuple[float, ...]

    @property
    def span(self) -> float:
        return max(self.time) - min(self.time)


def cadences(alerts: Iterable[Alert], min_epochs: int = 20) -> list[Cadence]:
    """One `Cadence` per object of ``alerts`` with at least ``min_epochs`` distinct epochs that have
    a noise estimate, sorted by object name."""
    epochs: dict[str, dict[tuple[float, str], float]] = {}
    for alert in alerts:
        for point in alert.datapoints:
            noise = _noise(point)
            if noise is not None and point.band:
                epochs.setdefault(alert.stock_name, {})[(round(point.time, 5), point.band)] = noise
    found = []
    for name, points in sorted(epochs.items()):
        if len(points) >= min_epochs:
            ordered = sorted(points.items())
            found.append(Cadence(name, tuple(t for (t, _), _ in ordered), tuple(b for (_, b), _ in ordered),
                                 tuple(n for _, n in ordered)))
    return found


def _noise(point: DataPoint) -> float | None:
    limit = point.extra.get("diffmaglim")
    if isinstance(limit, (int, float)) and 10 < limit < 30:
        return float(10 ** (-0.4 * (limit - _ZP)) / 5)
    if point.upper_limit and point.flux_err and point.flux_err > 0:
        return float(point.flux_err)
    return None


def salt2_model(z: float, t0: float, x1: float = 0.0, c: float = 0.0, magnification: float = 1.0,
                absolute_magnitude: float = ABSOLUTE_MAGNITUDE) -> Any:
    """An sncosmo SALT2 2.4 model at ``z`` whose peak is ``absolute_magnitude`` (Bessell B, AB, at
    Planck18's luminosity distance) brightened by ``magnification``."""
    import sncosmo
    from ampel_sncosmo.datafiles import load_source, search_path
    from astropy.cosmology import Planck18

    model = sncosmo.Model(load_source("salt2", "2.4", search_path(None)).value)
    model.set(z=z, t0=t0, x1=x1, c=c)
    model.set_source_peakabsmag(absolute_magnitude, "bessellb", "ab", cosmo=Planck18)
    model.set(x0=model.get("x0") * magnification)
    return model


@dataclass(frozen=True)
class SimulatedSN:
    """A simulated event: its name, truth, and the datapoints of its light curve."""

    name: str
    lensed: bool
    truth: dict[str, float]
    datapoints: tuple[DataPoint, ...]


def observe(model: Any, cadence: Cadence, rng: Any, *, stock: int, ra: float, dec: float,
            window: tuple[float, float] = (-30.0, 90.0), calibration: float = 0.02) -> list[DataPoint]:
    """Measurements of ``model`` at the epochs of ``cadence`` (repeated to cover ``window``,
    observer-frame days from the model's t0, with a random start), with Gaussian noise."""
    import numpy as np
    from ampel_sncosmo.datafiles import load_bandpass, search_path

    t0 = float(model.get("t0"))
    first, last = t0 + window[0], t0 + window[1]
    start = first - rng.uniform(0, cadence.span + 1.0)
    base = np.asarray(cadence.time) - min(cadence.time)
    times, bands, noises = [], [], []
    offset = start
    while offset <= last:
        shifted = base + offset
        keep = (shifted >= first) & (shifted <= last)
        times += list(shifted[keep])
        bands += [b for b, k in zip(cadence.band, keep, strict=True) if k]
        noises += [n for n, k in zip(cadence.noise, keep, strict=True) if k]
        offset += cadence.span + 1.0
    folders = search_path(None)
    bandpasses = {b: load_bandpass(b, folders).value for b in set(bands)}
    points = []
    for index, (time, band, noise) in enumerate(zip(times, bands, noises, strict=True)):
        bandpass = bandpasses[band]
        covered = model.minwave() <= bandpass.minwave() and bandpass.maxwave() <= model.maxwave()
        true = float(model.bandflux(bandpass, time, zp=_ZP, zpsys="ab")) if covered else 0.0
        error = math.hypot(noise, calibration * max(true, 0.0))
        flux = true + float(rng.normal(0.0, error))
        limit = _ZP - 2.5 * math.log10(5 * noise)
        points.append(DataPoint(
            id=stock * 1000 + index + 1, stock=stock, time=float(time), band=band, flux=flux, flux_err=error,
            mag=_ZP - 2.5 * math.log10(flux) if flux > 0 else None, mag_err=_MAG * error / flux if flux > 0 else None,
            tags=("ZTF", "ZTF_PUB"),
            extra={"ra": ra + float(rng.normal(0, 1e-5)), "dec": dec + float(rng.normal(0, 1e-5)), "diffmaglim": limit,
                   "simulated": True}))
    return points


_MAG = 2.5 / math.log(10)


def galaxy_row(name: str, ra: float, dec: float, z: float, diameter_kpc: float = 20.0, axis_ratio: float = 0.7,
               position_angle: float = 30.0) -> dict[str, Any]:
    """A galaxy catalogue row with GWGC's columns: ``NED_name``, ``RAJ2000``, ``DEJ2000`` (degrees),
    ``maj``/``min`` (diameters, arcmin, from ``diameter_kpc`` at the angular-diameter distance),
    ``PAHyp`` (degrees) and ``Dist`` (Mpc, Planck18 luminosity distance at ``z``)."""
    import astropy.units as u
    from astropy.cosmology import Planck18

    major = float((diameter_kpc * u.kpc / Planck18.angular_diameter_distance(z)).to_value(u.arcmin,
                                                                                        u.dimensionless_angles()))
    return {"NED_name": name, "RAJ2000": ra, "DEJ2000": dec, "maj": major, "min": major * axis_ratio,
            "PAHyp": position_angle, "Dist": float(Planck18.luminosity_distance(z).to_value(u.Mpc))}


def simulated_event(rng: Any, cadence: Cadence, *, stock: int, ra: float, dec: float, lensed: bool,
                    z_source: float, z_lens: float, magnification: float = 1.0, t0: float = 59000.0,
                    window: tuple[float, float] = (-30.0, 90.0)) -> tuple[SimulatedSN, dict[str, Any]]:
    """A SN Ia (x1 ~ N(0, 1), c ~ N(0, 0.1), M_B ~ N(-19.3, 0.1)) at ``z_source`` magnified by
    ``magnification``, observed at ``cadence``, and its galaxy row: the lens at ``z_lens`` (lensed) or
    the host (unlensed: give ``z_lens`` = ``z_source``), 1 arcsec from the supernova."""
    x1, c = float(rng.normal(0, 1)), float(rng.normal(0, 0.1))
    absolute = ABSOLUTE_MAGNITUDE + float(rng.normal(0, 0.1))
    model = salt2_model(z_source, t0, x1=x1, c=c, magnification=magnification, absolute_magnitude=absolute)
    name = f"SIM{stock:05d}"
    points = observe(model, cadence, rng, stock=stock, ra=ra, dec=dec, window=window)
    truth = {"z_source": z_source, "z_lens": z_lens, "magnification": magnification, "x1": x1, "c": c,
             "absolute_magnitude": absolute, "t0": t0}
    row = galaxy_row(f"GAL{stock:05d}", ra + 1.0 / 3600, dec, z_lens)
    return SimulatedSN(name, lensed, truth, tuple(points)), row


def write_galaxy_catalog(path: str | Path, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Write `galaxy_row` rows as a CSV file; return the ``catalog`` config of a unit that reads it
    (``{"file": path, **GALAXY_COLUMNS}``)."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {"file": str(path), **GALAXY_COLUMNS}
