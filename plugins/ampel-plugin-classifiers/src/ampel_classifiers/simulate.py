"""Seeded, offline simulation of ZTF- and LSST-like light curves for training classifiers.

`simulate(survey, n_per_class, seed)` returns `SimulatedObject`s: a class label, the physical
parameters drawn, and a `LightCurve` (flux at AB zero point 25) as the survey would deliver it:

* **ZTF**: detections (|flux| / error >= 5), as in alert histories, and the epochs without a
  detection from 30 days before the first detection on as upper limits (``limit_time``,
  ``limit_mag``: the epoch's 5-sigma limiting magnitude), as ZTF alerts carry them.
* **LSST**: forced photometry at every epoch from 30 days before the first detection to the end of
  the window, each point flagged ``detected`` when |flux| / error >= 5 (as ELAsTiCC alerts carry).

Observing conditions come from real alert histories (``data/observing_conditions.json``, made by
``training/extract_conditions.py``): epochs follow each other by gaps drawn from the real gap
distribution, each epoch's band is drawn with the real band frequencies and its 5-sigma limiting
magnitude from the real distribution of that band. Seasons are imposed on a 500-day window (ZTF:
240 days visible per year, LSST: 180). The noise of a point is the sky noise of its limiting
magnitude, plus the source's own Poisson noise scaled to it.

Classes (see docs/classifier-training.md for the reasons behind each number):

* ``SN Ia``: SALT2 (2.4, shipped with ampel-plugin-sncosmo), x1 ~ N(0, 1), c ~ N(0, 0.1), M_B =
  -19.3 - 0.14 x1 + 3.1 c + N(0, 0.12).
* ``SN Ibc`` / ``SN II``: the S11 and V19 templates (``data/cc_templates.npz``), M_B ~ N(-17.5, 0.8)
  (Ibc), N(-16.8, 0.9) (II), N(-18.5, 1.0) (IIn).
* ``SLSN``: a Bazin-shaped luminosity with a cooling blackbody, M ~ N(-21.2, 0.6).
* ``TDE``: Gaussian rise, t^(-5/3) decline, hot constant blackbody, M ~ N(-19.5, 0.6).
* ``AGN``: a damped random walk in magnitude (MacLeod et al. 2010), difference flux to the mean.
* ``periodic variable``: RR Lyrae, Cepheid and eclipsing-binary shapes, difference flux to the mean.
* ``other``: stellar flares, microlensing events and dwarf-nova outbursts.

Transients are placed at redshifts drawn from a volume-weighted distribution (p(z) ~ z^2) up to a
class and survey limit (a quarter of them, `NEARBY_FRACTION`, log-uniform from z = 0.002 instead, so
that bright, well-sampled light curves are in training) and scaled with Planck18 distances; host dust E(B-V) ~ Exp(0.1), R_V = 3.1.
Each object also gets the context its alerts would carry (`simulate_context`: ZTF's nearest Pan-STARRS1
source, LSST's host galaxy with a photometric redshift; none for a tenth of them, `CONTEXT_UNKNOWN`), from a
random stream of its own. An object without a detection is drawn again (the survey never sees it). Every object has its own
seed, derived from (seed, class, index), so an object does not depend on how many others are drawn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ampel_classifiers.features import SURVEYS, LightCurve, distance_modulus

__all__ = ["CLASSES", "CONDITIONS_FILE", "TEMPLATES_FILE", "SimulatedObject", "observing_conditions", "simulate",
           "simulate_context", "simulate_object", "truncate"]

CLASSES = ("SN Ia", "SN Ibc", "SN II", "SLSN", "TDE", "AGN", "periodic variable", "other")
DATA_DIR = Path(__file__).parent / "data"
CONDITIONS_FILE = DATA_DIR / "observing_conditions.json"
TEMPLATES_FILE = DATA_DIR / "cc_templates.npz"

WINDOW_DAYS = 500.0
SEASON_DAYS = {"ztf": 240.0, "lsst": 180.0}
FORCED_BEFORE_DAYS = 30.0  # LSST alerts carry forced photometry this long before the first detection
DETECTION_SNR = 5.0
MAX_ATTEMPTS = 200
# largest redshift drawn per class and survey: beyond it (almost) nothing is detected
Z_MAX = {"ztf": {"SN Ia": 0.15, "SN Ibc": 0.07, "SN II": 0.06, "SLSN": 0.5, "TDE": 0.2},
         "lsst": {"SN Ia": 0.9, "SN Ibc": 0.35, "SN II": 0.3, "SLSN": 2.0, "TDE": 0.8}}
# a fraction of the transients at log-uniform redshifts from NEARBY_Z_MIN (about 12 mag for a SN Ia): the
# classifier sees long, high-SNR light curves of bright objects too (SN 2021rhu, 12.5 mag, in NGC 7814)
NEARBY_FRACTION = 0.25
NEARBY_Z_MIN = 0.002
# variability amplitude per band relative to r (bluer bands vary more, for AGN, pulsators and flares)
BAND_WAVELENGTH = {"ztfg": 4800.0, "ztfr": 6400.0, "ztfi": 7900.0, "lsstu": 3700.0, "lsstg": 4800.0,
                   "lsstr": 6200.0, "lssti": 7500.0, "lsstz": 8700.0, "lssty": 9700.0}


@dataclass(frozen=True)
class SimulatedObject:
    """One simulated object: its class, the parameters drawn and its light curve (zero point 25)."""

    label: str
    lightcurve: LightCurve
    params: Mapping[str, Any] = field(default_factory=dict)


@cache
def observing_conditions() -> dict[str, Any]:
    """The shipped observing-conditions table (see training/extract_conditions.py)."""
    table: dict[str, Any] = json.loads(CONDITIONS_FILE.read_text())
    return table


def _check_survey(survey: str) -> tuple[str, ...]:
    if survey not in SURVEYS:
        raise ValueError(f"unknown survey {survey!r}; choose one of {', '.join(SURVEYS)}")
    return SURVEYS[survey]


def _draw_quantile(rng: np.random.Generator, quantiles: Sequence[float], size: int) -> np.ndarray:
    """Draw from the distribution whose 101 quantiles (0, 1, ..., 100 %) are given (inverse CDF)."""
    return np.interp(rng.uniform(0, 100, size), np.arange(len(quantiles)), quantiles)


@dataclass(frozen=True)
class _Epochs:
    time: np.ndarray
    band: np.ndarray
    sky_err: np.ndarray  # 1-sigma flux error of the sky at the epoch (zero point 25)


def _epochs(survey: str, rng: np.random.Generator) -> _Epochs:
    bands = _check_survey(survey)
    conditions = observing_conditions()[survey]
    gaps = _draw_quantile(rng, conditions["gap_days"], 4000)
    time = np.cumsum(gaps)
    time = time[time < WINDOW_DAYS]
    phase = rng.uniform(0, 365.25)
    time = time[(time + phase) % 365.25 < SEASON_DAYS[survey]]
    fractions = np.array([conditions["bands"][band]["fraction"] for band in bands])
    band = rng.choice(np.array(bands), size=len(time), p=fractions / fractions.sum())
    maglim = np.empty(len(time))
    for name in bands:
        rows = band == name
        maglim[rows] = _draw_quantile(rng, conditions["bands"][name]["limiting_mag"], int(rows.sum()))
    maglim = np.clip(maglim, 15.0, 27.0)  # a few alerts carry a placeholder limit
    return _Epochs(time, band, 10 ** (-0.4 * (maglim - 25.0)) / DETECTION_SNR)


def _observe(survey: str, epochs: _Epochs, flux: np.ndarray, rng: np.random.Generator) -> LightCurve | None:
    """Add noise and keep what the survey delivers; None when nothing is detected."""
    keep = np.isfinite(flux)
    time, band, sky_err, flux = epochs.time[keep], epochs.band[keep], epochs.sky_err[keep], flux[keep]
    # Poisson noise of the source, relative to the sky's: a source at the 5-sigma limit adds 20 %
    flux_err = sky_err * np.sqrt(1.0 + np.clip(flux, 0, None) / (DETECTION_SNR * sky_err) / 5.0)
    observed = flux + rng.normal(0.0, 1.0, len(flux)) * flux_err
    detected = np.abs(observed) >= DETECTION_SNR * flux_err
    if not detected.any():
        return None
    recent = time >= time[detected][0] - FORCED_BEFORE_DAYS
    if survey == "ztf":  # detections, and the epochs without one as upper limits (the sky's 5-sigma limit)
        limits = recent & ~detected
        return LightCurve(time=time[detected] + 60000.0, flux=observed[detected], flux_err=flux_err[detected],
                          band=band[detected].astype(str), detected=detected[detected],
                          limit_time=time[limits] + 60000.0,
                          limit_mag=25.0 - 2.5 * np.log10(DETECTION_SNR * sky_err[limits]))
    return LightCurve(time=time[recent] + 60000.0, flux=observed[recent], flux_err=flux_err[recent],
                      band=band[recent].astype(str), detected=detected[recent])


def truncate(lightcurve: LightCurve, n_detections: int) -> LightCurve:
    """The light curve as known at its ``n_detections``-th detection: every point up to that time."""
    order = np.argsort(lightcurve.time, kind="stable")
    times = lightcurve.time[order]
    detection_times = times[lightcurve.detected[order]]
    if n_detections < 1 or n_detections > len(detection_times):
        raise ValueError(f"cannot truncate a light curve with {len(detection_times)} detections at {n_detections}")
    rows = order[times <= detection_times[n_detections - 1]]
    limits = lightcurve.limit_time <= detection_times[n_detections - 1]
    return replace(lightcurve, time=lightcurve.time[rows], flux=lightcurve.flux[rows],
                   flux_err=lightcurve.flux_err[rows], band=lightcurve.band[rows], detected=lightcurve.detected[rows],
                   limit_time=lightcurve.limit_time[limits], limit_mag=lightcurve.limit_mag[limits])


# --- transients: sncosmo models -------------------------------------------------------------------------------------


@cache
def _bandpasses(survey: str) -> dict[str, Any]:
    from ampel_sncosmo.datafiles import load_bandpass, search_path

    return {band: load_bandpass(band, search_path()).value for band in SURVEYS[survey]}


@cache
def _salt2() -> Any:
    from ampel_sncosmo.datafiles import load_source, search_path

    return load_source("salt2", "2.4", search_path()).value


@cache
def _cc_templates() -> dict[str, tuple[str, Any]]:
    """Template name -> (class, sncosmo TimeSeriesSource) of the shipped core-collapse templates."""
    import sncosmo

    with np.load(TEMPLATES_FILE, allow_pickle=False) as data:
        phase, wave = data["phase"], data["wave"]
        return {str(name): (str(label), sncosmo.TimeSeriesSource(phase, wave, data[f"flux_{name}"].astype(float),
                                                                name=str(name), time_spline_degree=1))
                for name, label in zip(data["names"], data["classes"], strict=True)}


@cache
def _cc_template_names() -> dict[str, dict[str, str]]:
    """Class -> {template name: type} (types read from the shipped file)."""
    with np.load(TEMPLATES_FILE, allow_pickle=False) as data:
        out: dict[str, dict[str, str]] = {}
        for name, sn_type, label in zip(data["names"], data["types"], data["classes"], strict=True):
            out.setdefault(str(label), {})[str(name)] = str(sn_type)
        return out


def _blackbody_source(phase: np.ndarray, luminosity: np.ndarray, temperature: np.ndarray, uv_cut: float) -> Any:
    """A TimeSeriesSource with a blackbody of ``temperature`` (K) scaled by ``luminosity`` at each phase."""
    import sncosmo

    wave = np.arange(1000.0, 12001.0, 100.0)
    hc_k = 1.438777e8  # h c / k in Angstrom Kelvin
    planck = wave[None, :] ** -5 / np.expm1(hc_k / (wave[None, :] * temperature[:, None]))
    planck /= (temperature[:, None] ** 4)  # bolometric flux of a blackbody goes as T^4
    if uv_cut > 0:  # line blanketing below ~3000 A (SLSNe)
        planck *= np.clip(wave / uv_cut, 0, 1)[None, :] ** 3
    flux = luminosity[:, None] * planck
    return sncosmo.TimeSeriesSource(phase, wave, flux / flux.max(), time_spline_degree=1)


@cache
def _distance_modulus() -> tuple[np.ndarray, np.ndarray]:
    """Planck18 distance modulus on a redshift grid (interpolated: astropy per object is slow)."""
    from astropy.cosmology import Planck18

    grid = np.geomspace(1e-4, 3.0, 2000)
    return grid, np.asarray(Planck18.distmod(grid).value)


@cache
def _peak_phase(name: str) -> float:
    """Rest-frame phase of a template's B-band maximum (found once per template)."""
    return float(_cc_templates()[name][1].peakphase("bessellb", sampling=0.5))


def _scale_to_peak(model: Any, magnitude: float, peak_phase: float) -> None:
    """Scale the model's source so that its rest-frame B magnitude at ``peak_phase`` is ``magnitude``
    at the model's redshift (what sncosmo's set_source_peakabsmag does, without its peak search)."""
    grid, modulus = _distance_modulus()
    target = magnitude + float(np.interp(model.get("z"), grid, modulus))
    current = float(model.source.bandmag("bessellb", "ab", peak_phase))
    name = model.source.param_names[0]
    model.set(**{name: model.get(name) * 10 ** (0.4 * (current - target))})


def _slsn(rng: np.random.Generator) -> tuple[Any, dict[str, Any]]:
    phase = np.arange(-150.0, 500.0, 3.0)
    rise, fall = rng.uniform(15, 40), rng.uniform(40, 120)
    shift = rise * np.log(max(fall / rise - 1, 1e-3))  # the maximum of the Bazin shape at phase 0
    luminosity = np.exp(-(phase + shift) / fall) / (1 + np.exp(-(phase + shift) / rise))
    t_peak, cooling = rng.uniform(12000, 18000), rng.uniform(40, 100)
    temperature = np.clip(t_peak - cooling * np.clip(phase, 0, None), 6000, None)
    params = {"rise_days": rise, "fall_days": fall, "t_peak_K": t_peak, "cooling_K_per_day": cooling}
    return _blackbody_source(phase, luminosity, temperature, uv_cut=3000.0), params


def _tde(rng: np.random.Generator) -> tuple[Any, dict[str, Any]]:
    phase = np.arange(-150.0, 500.0, 3.0)
    sigma, t0 = rng.uniform(8, 30), rng.uniform(20, 80)
    luminosity = np.where(phase < 0, np.exp(-0.5 * (phase / sigma) ** 2), (1 + np.clip(phase, 0, None) / t0) ** (-5 / 3))
    temperature = np.full(len(phase), rng.uniform(20000, 40000))
    params = {"rise_sigma_days": sigma, "decline_t0_days": t0, "temperature_K": float(temperature[0])}
    return _blackbody_source(phase, luminosity, temperature, uv_cut=0.0), params


def _transient(label: str, survey: str, rng: np.random.Generator) -> tuple[Any, dict[str, Any]]:
    """An sncosmo Model of one transient of class ``label``, placed and scaled; and its parameters."""
    import sncosmo

    peak_phase = 0.0  # SALT2's phase 0 is B maximum; the blackbody sources peak at phase 0
    params: dict[str, Any]
    if label == "SN Ia":
        source, params = _salt2(), {"x1": float(np.clip(rng.normal(0, 1), -3, 3)),
                                    "c": float(np.clip(rng.normal(0, 0.1), -0.3, 0.5))}
        magnitude = -19.3 - 0.14 * params["x1"] + 3.1 * params["c"] + rng.normal(0, 0.12)
    elif label in ("SN Ibc", "SN II"):
        names = _cc_template_names()[label]
        name = str(rng.choice(sorted(names)))
        source, params = _cc_templates()[name][1], {"template": name, "type": names[name]}
        peak_phase = _peak_phase(name)
        mean, sigma = {"SN Ibc": (-17.5, 0.8), "SN II": (-16.8, 0.9)}[label]
        if names[name] == "SN IIn":
            mean, sigma = -18.5, 1.0
        magnitude = rng.normal(mean, sigma)
    elif label == "SLSN":
        source, params = _slsn(rng)
        magnitude = rng.normal(-21.2, 0.6)
    else:
        source, params = _tde(rng)
        magnitude = rng.normal(-19.5, 0.6)
    if rng.uniform() < NEARBY_FRACTION:  # log-uniform: the nearby, bright objects volume weighting never draws
        redshift = float(np.exp(rng.uniform(np.log(NEARBY_Z_MIN), np.log(Z_MAX[survey][label]))))
    else:
        redshift = float(Z_MAX[survey][label] * rng.uniform(0.003, 1) ** (1 / 3))  # p(z) ~ z^2
    ebv = float(rng.exponential(0.1)) if label.startswith("SN") else 0.0
    model = sncosmo.Model(source=source, effects=[sncosmo.CCM89Dust()], effect_names=["host"],
                          effect_frames=["rest"])
    model.set(z=redshift, hostebv=ebv, hostr_v=3.1, **({k: params[k] for k in ("x1", "c")} if label == "SN Ia" else {}))
    _scale_to_peak(model, magnitude, peak_phase)
    return model, {**params, "z": redshift, "peak_abs_mag_B": float(magnitude), "host_ebv": ebv}


def _transient_flux(model: Any, survey: str, epochs: _Epochs, t0: float) -> np.ndarray:
    model.set(t0=t0)
    flux = np.full(len(epochs.time), np.nan)
    inside = (epochs.time > model.mintime()) & (epochs.time < model.maxtime())
    for name, bandpass in _bandpasses(survey).items():
        rows = inside & (epochs.band == name)
        if rows.any() and model.bandoverlap(bandpass):
            flux[rows] = model.bandflux(bandpass, epochs.time[rows], zp=25.0, zpsys="ab")
    # outside the model's time range the transient is not there: zero flux, still observed
    flux[~inside] = 0.0
    return flux


# --- variable sources: difference flux to the mean (the reference image) ---------------------------------------------


def _band_scale(epochs: _Epochs, power: float) -> np.ndarray:
    wavelength = np.array([BAND_WAVELENGTH[band] for band in epochs.band])
    scale: np.ndarray = (wavelength / 6200.0) ** -power
    return scale


def _difference_flux(mean_mag: float, delta_mag: np.ndarray) -> np.ndarray:
    flux: np.ndarray = 10 ** (-0.4 * (mean_mag - 25.0)) * (10 ** (-0.4 * delta_mag) - 1.0)
    return flux


def _agn(survey: str, epochs: _Epochs, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    tau = float(np.exp(rng.normal(np.log(200.0), 0.5)))
    sf_inf = float(np.exp(rng.normal(np.log(0.25), 0.4)))
    mean_mag = float(rng.uniform(17.0, 20.5) if survey == "ztf" else rng.uniform(19.0, 24.0))
    delta = np.empty(len(epochs.time))
    previous_time, value = epochs.time[0] if len(epochs.time) else 0.0, rng.normal(0, sf_inf / np.sqrt(2))
    for index, time in enumerate(epochs.time):  # exact Ornstein-Uhlenbeck update
        decay = np.exp(-(time - previous_time) / tau)
        value = value * decay + rng.normal(0, sf_inf / np.sqrt(2) * np.sqrt(1 - decay**2))
        delta[index], previous_time = value, time
    flux = _difference_flux(mean_mag, delta * _band_scale(epochs, 0.5))
    return flux, {"tau_days": tau, "sf_inf_mag": sf_inf, "mean_mag": mean_mag}


def _periodic(survey: str, epochs: _Epochs, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    kind = str(rng.choice(["RR Lyrae", "Cepheid", "eclipsing binary"]))
    low, high = {"RR Lyrae": (0.3, 0.9), "Cepheid": (2.0, 50.0), "eclipsing binary": (0.3, 10.0)}[kind]
    period = float(rng.uniform(low, high) if kind == "RR Lyrae" else np.exp(rng.uniform(np.log(low), np.log(high))))
    amplitude = float(rng.uniform(0.3, 1.2))
    phase = (epochs.time / period + rng.uniform()) % 1.0
    if kind == "eclipsing binary":  # two eclipses, the secondary shallower
        width, ratio = rng.uniform(0.03, 0.12), rng.uniform(0.1, 0.9)
        shape = np.exp(-0.5 * (phase / width) ** 2) + np.exp(-0.5 * ((phase - 1) / width) ** 2)
        shape += ratio * np.exp(-0.5 * ((phase - 0.5) / width) ** 2)
        delta, power = amplitude * shape, 0.2
    else:  # fast rise, slow decline (sawtooth-like pulsation), brighter = negative delta mag
        rise = 0.15 if kind == "RR Lyrae" else 0.3
        shape = np.where(phase < rise, phase / rise, 1 - (phase - rise) / (1 - rise))
        delta, power = -amplitude * (shape - 0.5), 1.0
    mean_mag = float(rng.uniform(14.5, 19.5) if survey == "ztf" else rng.uniform(17.0, 23.0))
    flux = _difference_flux(mean_mag, delta * _band_scale(epochs, power))
    return flux, {"kind": kind, "period_days": period, "amplitude_mag": amplitude, "mean_mag": mean_mag}


def _other(survey: str, epochs: _Epochs, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    kind = str(rng.choice(["flare", "microlensing", "dwarf nova"]))
    time = epochs.time
    t0 = rng.uniform(0, WINDOW_DAYS)
    mean_mag = float(rng.uniform(16.0, 20.5) if survey == "ztf" else rng.uniform(18.0, 24.0))
    if kind == "flare":  # M-dwarf flares: minutes-long rise, exponential decay, much bluer
        decay = rng.uniform(0.02, 0.3)
        boost = sum(np.where(time >= t, np.exp(-np.clip(time - t, 0, None) / decay), 0.0) * rng.uniform(1, 10)
                    for t in (t0, *rng.uniform(0, WINDOW_DAYS, rng.integers(0, 3))))
        flux = 10 ** (-0.4 * (mean_mag - 25.0)) * boost * _band_scale(epochs, 2.0)
        params = {"decay_days": decay}
    elif kind == "microlensing":  # Paczynski curve: achromatic, symmetric
        te, u0 = float(np.exp(rng.normal(np.log(20), 0.6))), float(rng.uniform(0.05, 1.0))
        u = np.sqrt(u0**2 + ((time - t0) / te) ** 2)
        flux = 10 ** (-0.4 * (mean_mag - 25.0)) * ((u**2 + 2) / (u * np.sqrt(u**2 + 4)) - 1)
        params = {"t_E_days": te, "u0": u0}
    else:  # dwarf nova: recurrent outbursts of 2-5 mag lasting days
        recurrence, duration, depth = rng.uniform(20, 120), rng.uniform(4, 15), rng.uniform(2, 5)
        since = (time - t0) % recurrence
        shape = np.where(since < 1.0, since, np.exp(-(since - 1.0) / (duration / 3)))
        flux = _difference_flux(mean_mag, -depth * np.clip(shape, 0, 1) * _band_scale(epochs, 0.3))
        params = {"recurrence_days": recurrence, "duration_days": duration, "outburst_mag": depth}
    return flux, {"kind": kind, "mean_mag": mean_mag, **params}


# --- context: host galaxy (LSST) and nearest Pan-STARRS1 source (ZTF) -----------------------------------------------
# The numbers and their sources are in docs/classifier-training.md ("Context").

CONTEXT_STREAM = 7
# host galaxy absolute r magnitude: mean, sigma
HOST_ABS_MAG = {"SN Ia": (-20.6, 1.0), "SN Ibc": (-20.2, 1.0), "SN II": (-20.2, 1.0), "SLSN": (-17.3, 1.2),
                "TDE": (-20.0, 0.6)}
# offset of the transient from its host's centre (kpc): Gamma(2, scale); TDEs are nuclear
HOST_OFFSET_KPC = {"SN Ia": 1.5, "SN Ibc": 1.2, "SN II": 1.5, "SLSN": 0.5, "TDE": 0.0}
HOST_DEPTH = {"ztf": 23.0, "lsst": 26.5}  # r magnitude of the faintest catalogued host (PS1 3pi; LSST-like)
ASTROMETRY_ARCSEC = {"ztf": 0.15, "lsst": 0.05}  # Rayleigh scale of the measured position's error
PS1_SATURATION = 14.0  # PS1 saturates and shreds big galaxies: the nearest "source" is a fragment
SGSCORE_AMBIGUOUS = 0.12  # fraction of PS1 sources with sgscore1 = 0.5 exactly (real ZTF alerts: 12 %)
PHOTO_Z = {"galaxy": (0.04, 0.05), "AGN": (0.10, 0.15)}  # sigma / (1 + z), outlier fraction
STELLAR = ("periodic variable", "other")
# a fraction of objects whose state carries no context at all (a channel without the diaObject, a schema without
# the fields, a ZTF state of prv_candidates only): the models learn that unknown context is not "hostless"
CONTEXT_UNKNOWN = 0.1


def _photo_z(z: float, kind: str, rng: np.random.Generator) -> tuple[float, float]:
    sigma, outliers = PHOTO_Z[kind]
    z_phot = float(rng.uniform(0.02, 3.0)) if rng.uniform() < outliers else z + rng.normal(0, sigma * (1 + z))
    z_phot = max(z_phot, 0.01)
    return z_phot, float(sigma * (1 + z_phot) * np.exp(rng.normal(0, 0.3)))


def _arcsec_per_kpc(z: float) -> float:
    angular_mpc = 10 ** ((distance_modulus(z) - 25) / 5) / (1 + z) ** 2
    return 206.265 / (angular_mpc * 1000.0) * 1000.0


def _ps1_neighbour(rng: np.random.Generator) -> dict[str, float]:
    """An unrelated field source: the nearest PS1 source of a transient without a catalogued host."""
    if rng.uniform() < 0.05:
        return {}  # none within 30 arcsec
    star = rng.uniform() < 0.6
    return {"ps1_sgscore": float(rng.beta(12, 1) if star else rng.beta(1, 6)),
            "ps1_distance": float(min(rng.rayleigh(8.0), 30.0)), "ps1_mag": float(rng.uniform(16.0, 22.5))}


def simulate_context(label: str, survey: str, params: Mapping[str, Any], rng: np.random.Generator) -> dict[str, float]:
    """What the alerts of a simulated object say about its surroundings (`LightCurve.context`): for ZTF its
    nearest Pan-STARRS1 source (``ps1_sgscore``, ``ps1_distance``, ``ps1_mag``), for LSST its host galaxy
    (``host_z``, ``host_z_err``, ``host_sep``, ``host_mag``); missing keys are unknown (`CONTEXT_UNKNOWN`
    of the objects have none)."""
    if rng.uniform() < CONTEXT_UNKNOWN:
        return {}
    astrometry = float(rng.rayleigh(ASTROMETRY_ARCSEC[survey]))
    if label in STELLAR or label == "AGN":
        # the source itself is in the reference catalogue, at the alert's position
        mean_mag = float(params["mean_mag"]) + rng.normal(0, 0.1 if label in STELLAR else 0.3)
        if survey == "ztf":
            point_like = rng.uniform() < (0.95 if label in STELLAR else 0.4)
            score = float(rng.beta(12, 1) if point_like else rng.beta(1, 4))
            if rng.uniform() < SGSCORE_AMBIGUOUS:
                score = 0.5
            return {"ps1_sgscore": score, "ps1_distance": astrometry, "ps1_mag": max(mean_mag, PS1_SATURATION)}
        if label == "AGN":
            z = float(rng.uniform(0.1, 2.5))
            z_phot, z_err = _photo_z(z, "AGN", rng)
            return {"host_z": z_phot, "host_z_err": z_err, "host_sep": astrometry, "host_mag": mean_mag}
        if rng.uniform() < 0.7:  # a star: no host galaxy matched
            return {}
        z_phot, z_err = _photo_z(float(rng.uniform(0.05, 1.5)), "galaxy", rng)  # a chance background galaxy
        return {"host_z": z_phot, "host_z_err": z_err, "host_sep": float(min(rng.rayleigh(3.0), 10.0)),
                "host_mag": float(rng.uniform(22.0, 26.5))}
    z = float(params["z"])
    mean, sigma = HOST_ABS_MAG[label]
    host_mag = float(rng.normal(mean, sigma) + distance_modulus(z))
    offset = float(rng.gamma(2.0, HOST_OFFSET_KPC[label])) * _arcsec_per_kpc(z) if HOST_OFFSET_KPC[label] else 0.0
    separation = float(np.hypot(offset + astrometry * rng.normal(), astrometry * rng.normal()))
    if host_mag > HOST_DEPTH[survey]:
        return _ps1_neighbour(rng) if survey == "ztf" else {}
    if survey == "lsst":
        z_phot, z_err = _photo_z(z, "galaxy", rng)
        return {"host_z": z_phot, "host_z_err": z_err, "host_sep": separation, "host_mag": host_mag}
    score = 0.5 if rng.uniform() < SGSCORE_AMBIGUOUS else float(rng.beta(1, 6))
    # a galaxy brighter than PS1's saturation is shredded: its nearest catalogued piece is a fainter fragment
    ps1_mag = host_mag if host_mag > PS1_SATURATION + 2 else float(rng.uniform(PS1_SATURATION, PS1_SATURATION + 3))
    return {"ps1_sgscore": score, "ps1_distance": separation, "ps1_mag": max(ps1_mag, host_mag)}


def simulate_object(label: str, survey: str, seed: int | Sequence[int]) -> SimulatedObject:
    """One object of class ``label`` as ``survey`` sees it, redrawn until it has a detection."""
    _check_survey(survey)
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}; classes are {', '.join(CLASSES)}")
    rng = np.random.default_rng(seed)
    for attempt in range(MAX_ATTEMPTS):
        epochs = _epochs(survey, rng)
        if len(epochs.time) == 0:
            continue
        if label in ("AGN", "periodic variable", "other"):
            flux, params = {"AGN": _agn, "periodic variable": _periodic, "other": _other}[label](survey, epochs, rng)
        else:
            model, params = _transient(label, survey, rng)
            t0 = rng.uniform(-20.0, WINDOW_DAYS)
            flux = _transient_flux(model, survey, epochs, t0)
            params["t0"] = t0 + 60000.0
        lightcurve = _observe(survey, epochs, flux, rng)
        if lightcurve is not None:
            # its own stream: the context does not change the light curves of a seed
            context_rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), attempt, CONTEXT_STREAM])
            context = simulate_context(label, survey, params, context_rng)
            return SimulatedObject(label, replace(lightcurve, context=context), {**params, "attempts": attempt + 1})
    raise RuntimeError(f"no detectable {label} in {MAX_ATTEMPTS} draws for {survey} (seed {seed})")


def simulate(survey: str, n_per_class: int | Mapping[str, int], seed: int,
             classes: Sequence[str] = CLASSES) -> list[SimulatedObject]:
    """``n_per_class`` objects of each class (or a class -> count mapping), in class order; deterministic
    for a seed: object i of class k has the seed (seed, k, i), k the class's index in `CLASSES`."""
    counts = dict.fromkeys(classes, n_per_class) if isinstance(n_per_class, int) else dict(n_per_class)
    for label in counts:
        if label not in CLASSES:
            raise ValueError(f"unknown class {label!r}; classes are {', '.join(CLASSES)}")
    return [simulate_object(label, survey, (seed, CLASSES.index(label), index))
            for label, count in counts.items() for index in range(count)]
