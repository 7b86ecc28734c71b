"""Light-curve features in flux space for ZTF (g, r, i) and LSST (ugrizy) light curves.

A `LightCurve` is one object's photometry: time (MJD), flux and its error at AB zero point 25
(``mag = 25 - 2.5 log10(flux)``; negative fluxes, as in difference imaging and forced photometry,
are allowed), the sncosmo band name of each point, and whether the point is a detection.

A `FeatureSet` (``feature_set("cheap" | "full", "ztf" | "lsst")``) turns a light curve into a
fixed-length float64 vector, NaN where a feature is undefined (too few points, no detection, a
colour of a non-positive flux). Its ``names``, ``version`` and ``digest`` identify it; a model
trained on one feature set is checked against it by name (`ampel_classifiers.model`).

The features, in this order:

1. **Per band**, from the ``light-curve`` package (Rust) in its multiband mode, one call per light
   curve on all points (detections, forced photometry), the flux as the "magnitude" argument and
   the time relative to the first detection (the first point when there is none), so that fitted
   times are relative: for each extractor, its value in each of the set's bands (light-curve's own
   names, ``amplitude_ztfg`` …). "cheap": amplitude, standard deviation, weighted mean, skew,
   kurtosis, reduced chi2, linear fit (slope, its sigma, reduced chi2), fraction beyond 1 std,
   maximum slope, cusum, eta_e, 10 % inter-percentile range, observation count. "full" adds the
   Bazin fit (amplitude, baseline, reference time, rise time, fall time, reduced chi2; ``lmsder``),
   Stetson K, Otsu split (4), median, percent amplitude; and the best period of the periodogram of
   the band with the most points (the first of equals) and its S/N (``periodogram_period_0``,
   ``periodogram_period_s_to_n_0``).
2. **Per band**, from numpy: ``peak_rel_mag_<band>`` (the band's largest flux as a magnitude
   relative to the peak detection's: ``-2.5 log10`` of their ratio)
   and ``peak_dt_<band>`` (time of the band's largest flux minus the time of the peak detection).
3. **Colours** of each pair of neighbouring bands (a bluer, b redder), in magnitudes:
   ``color_peak_<a>_<b>`` (of the bands' largest fluxes), ``color_mean_<a>_<b>`` (of their weighted
   mean fluxes), ``color_latest_<a>_<b>`` (of a's latest detection and b's detection nearest to it
   in time, within `LATEST_COLOR_WINDOW` days). NaN where a flux is not positive.
4. **Whole light curve**: ``n_detections``, ``n_points``, ``detection_duration`` (last minus first
   detection), ``rise_time`` (peak detection minus first detection), ``fall_time`` (last detection
   minus peak detection), ``max_snr``; the peak detection is the (earliest) detection with the largest flux.
5. **Context** the survey's alerts carry about the object's surroundings (`CONTEXT_NAMES`, read by
   `read_context` into ``LightCurve.context``; NaN where the alert has none): ZTF's nearest
   Pan-STARRS1 source (``ps1_sgscore``: star/galaxy score, ``ps1_distance``: arcsec, ``ps1_contrast``:
   peak detection minus the source's r magnitude); LSST's host galaxy (``host_z``, ``host_z_err``:
   its photometric redshift; ``host_sep``: arcsec; ``host_contrast``: peak detection minus the host's
   r magnitude; ``peak_abs_mag``: peak detection minus the distance modulus of ``host_z``).

Points at one time in one band are first combined into their inverse-variance weighted mean
(light-curve needs distinct times). Every non-finite value (a fit that diverged) is NaN, and so is
every value of a light-curve feature whose Rust code panics on a degenerate light curve.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from ampel_core.errors import AmpelError
from ampel_core.provenance import digest as _digest

if TYPE_CHECKING:
    from ampel_core.models import DataPoint

__all__ = ["CONTEXT_NAMES", "FEATURE_SETS", "FEATURE_VERSIONS", "LATEST_COLOR_WINDOW", "LSST_BANDS", "SURVEYS",
           "ZTF_BANDS", "FeatureError", "FeatureSet", "LightCurve", "distance_modulus", "feature_set",
           "light_curve_extractor", "normalisation", "read_context"]

ZTF_BANDS = ("ztfg", "ztfr", "ztfi")
LSST_BANDS = ("lsstu", "lsstg", "lsstr", "lssti", "lsstz", "lssty")
SURVEYS: dict[str, tuple[str, ...]] = {"ztf": ZTF_BANDS, "lsst": LSST_BANDS}
FEATURE_SETS = ("cheap", "full")
# raise a set's version whenever one of its features changes: models check it
# cheap 2 / full 3: fluxes normalised by the peak detection's flux, peak_rel_mag, rise/decline rates, the last
# non-detection before the first detection, the number of detected bands (full 2: the periodogram of the
# best-sampled band)
# cheap 3 / full 4: the context features (CONTEXT_NAMES)
FEATURE_VERSIONS = {"cheap": "3", "full": "4"}
LATEST_COLOR_WINDOW = 2.0  # days between the two detections of a "latest" colour
DETECTION_SNR = 5.0  # a forced-photometry point with flux / flux_err >= this counts as a detection
NONDETECTION_DEPTH_CLIP = 2.0  # nondet_depth is clipped to +- this (magnitudes): beyond it, it measures brightness
ZERO_POINT = 25.0


class FeatureError(AmpelError, ValueError):
    """A light curve or a feature set request that features cannot be computed from."""


@dataclass(frozen=True)
class LightCurve:
    """One object's photometry in flux space (AB, zero point 25), sorted by time or not."""

    time: np.ndarray  # MJD, float64
    flux: np.ndarray  # float64, zero point 25; negative allowed
    flux_err: np.ndarray  # float64, > 0
    band: np.ndarray  # str, sncosmo band names
    detected: np.ndarray  # bool
    # upper limits (non-detections without a flux): MJD and 5-sigma limiting AB magnitude
    limit_time: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    limit_mag: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    # what the alerts say about the object's surroundings (`read_context`): key -> value, absent if unknown
    context: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.time)
        lengths = {len(a) for a in (self.flux, self.flux_err, self.band, self.detected)}
        if lengths != {n}:
            raise FeatureError(f"light curve: arrays of different lengths ({n} times, {sorted(lengths)} others)")
        if len(self.limit_time) != len(self.limit_mag):
            raise FeatureError(f"light curve: {len(self.limit_time)} limit times, {len(self.limit_mag)} limit magnitudes")

    @classmethod
    def from_datapoints(cls, datapoints: Iterable[DataPoint]) -> LightCurve:
        """The light curve of core datapoints, sorted by time.

        Each flux is rescaled from its ``zp`` to 25. Upper limits with a finite limiting magnitude
        (``mag``) become ``limit_time`` / ``limit_mag``; points without a band, a finite flux or a
        positive finite flux error are left out (they hold no flux measurement).
        The context is that of the latest datapoint carrying it (`read_context`).
        A point tagged ``forced`` is a detection when its SNR is at least 5; any other point is an
        alert detection. A forced point at the time and in the band of an alert detection is the
        same exposure measured twice: the detection is kept. A zero-point system other than AB is an
        error.
        """
        rows, limits = [], []
        context_time, context_record = -math.inf, None
        for dp in datapoints:
            extra = dp.extra
            if ("sgscore1" in extra or "hostgal_snsep" in extra) and dp.time >= context_time:  # see read_context
                context_time, context_record = dp.time, extra
            if dp.upper_limit and dp.band and dp.mag is not None and math.isfinite(dp.mag):
                limits.append((dp.time, dp.mag))
            if dp.upper_limit or not dp.band or dp.flux is None or dp.flux_err is None:
                continue
            if dp.zpsys.lower() != "ab":
                raise FeatureError(f"datapoint {dp.id}: zero-point system {dp.zpsys!r}, features need AB")
            scale = 10 ** (-0.4 * (dp.zp - ZERO_POINT))
            flux, flux_err = dp.flux * scale, dp.flux_err * scale
            if not (math.isfinite(flux) and math.isfinite(flux_err) and flux_err > 0):
                continue
            detected = flux / flux_err >= DETECTION_SNR if "forced" in dp.tags else True
            rows.append((dp.time, flux, flux_err, dp.band, detected, dp.id, "forced" in dp.tags))
        if any(row[6] for row in rows):
            alert_detections = {(row[0], row[3]) for row in rows if not row[6]}
            rows = [row for row in rows if not (row[6] and (row[0], row[3]) in alert_detections)]
        rows.sort(key=lambda row: (row[0], row[5]))
        limits.sort()
        return cls(time=np.array([r[0] for r in rows], dtype=np.float64),
                   flux=np.array([r[1] for r in rows], dtype=np.float64),
                   flux_err=np.array([r[2] for r in rows], dtype=np.float64),
                   band=np.array([r[3] for r in rows], dtype=np.str_),
                   detected=np.array([r[4] for r in rows], dtype=np.bool_),
                   limit_time=np.array([t for t, _ in limits], dtype=np.float64),
                   limit_mag=np.array([m for _, m in limits], dtype=np.float64),
                   context=read_context(context_record) if context_record is not None else {})

    @property
    def n_detections(self) -> int:
        return int(np.count_nonzero(self.detected))


# --- context: what an alert says about the object's surroundings --------------------------------------------------

CONTEXT_NAMES: dict[str, tuple[str, ...]] = {
    "ztf": ("ps1_sgscore", "ps1_distance", "ps1_contrast"),
    "lsst": ("host_z", "host_z_err", "host_sep", "host_contrast", "peak_abs_mag"),
}
# LightCurve.context keys: ZTF candidate fields (nearest Pan-STARRS1 source); ELAsTiCC diaObject fields (host
# galaxy; schema v0_9 has hostgal_z/_err, v0_9_1 and later hostgal_zphot/_err); sentinels (-999, -9, 999) are unknown
ZTF_CONTEXT_FIELDS = {"ps1_sgscore": "sgscore1", "ps1_distance": "distpsnr1", "ps1_mag": "srmag1"}
LSST_CONTEXT_FIELDS = {"host_sep": "hostgal_snsep", "host_mag": "hostgal_mag_r"}
LSST_REDSHIFT_FIELDS = (("hostgal_zphot", "hostgal_zphot_err"), ("hostgal_z", "hostgal_z_err"))


def _valid(value: Any, low: float, high: float) -> float | None:
    """``value`` as a float if it is a finite number in [low, high] (not a survey's sentinel), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and low <= value <= high else None


def read_context(record: dict[str, Any]) -> dict[str, float]:
    """The context of a ZTF candidate or an ELAsTiCC diaObject record (a datapoint's ``extra``), with only
    the values that are known: ``ps1_sgscore`` (0-1), ``ps1_distance`` (arcsec), ``ps1_mag`` (AB r);
    ``host_z``, ``host_z_err`` (the host's photometric redshift where the schema has one, else its
    ``hostgal_z``), ``host_sep`` (arcsec), ``host_mag`` (AB r)."""
    ranges = {"ps1_sgscore": (0.0, 1.0), "ps1_distance": (0.0, 3600.0), "ps1_mag": (5.0, 35.0),
              "host_sep": (0.0, 3600.0), "host_mag": (5.0, 35.0)}
    out: dict[str, float] = {}
    for key, name in (*ZTF_CONTEXT_FIELDS.items(), *LSST_CONTEXT_FIELDS.items()):
        if (value := _valid(record.get(name), *ranges[key])) is not None:
            out[key] = value
    for z_field, err_field in LSST_REDSHIFT_FIELDS:
        if (z := _valid(record.get(z_field), 1e-4, 10.0)) is not None:
            out["host_z"] = z
            if (err := _valid(record.get(err_field), 0.0, 10.0)) is not None:
                out["host_z_err"] = err
            break
    return out


@cache
def _distance_grid() -> tuple[np.ndarray, np.ndarray]:
    """Distance modulus on a redshift grid, flat Lambda-CDM with Planck 2018's H0 = 67.66, Omega_m = 0.30966
    (astropy's Planck18, radiation neglected: < 0.01 mag below z = 3)."""
    z = np.concatenate([[0.0], np.geomspace(1e-5, 10.0, 4000)])
    inverse_e = 1.0 / np.sqrt(0.30966 * (1 + z) ** 3 + 0.69034)
    comoving = np.concatenate([[0.0], np.cumsum(np.diff(z) * (inverse_e[1:] + inverse_e[:-1]) / 2)])
    luminosity_mpc = (1 + z[1:]) * comoving[1:] * 299792.458 / 67.66
    return z[1:], 5 * np.log10(luminosity_mpc) + 25


def distance_modulus(z: float) -> float:
    """The distance modulus (mag) at redshift ``z`` (see `_distance_grid`); NaN for z <= 0 or NaN."""
    if not z > 0:
        return math.nan
    grid, modulus = _distance_grid()
    return float(np.interp(z, grid, modulus))


def _context_features(survey: str, context: dict[str, float], peak_mag: float) -> list[float]:
    nan = math.nan
    get = context.get
    if survey == "ztf":
        return [get("ps1_sgscore", nan), get("ps1_distance", nan), peak_mag - get("ps1_mag", nan)]
    z = get("host_z", nan)
    return [z, get("host_z_err", nan), get("host_sep", nan), peak_mag - get("host_mag", nan),
            peak_mag - distance_modulus(z)]


def _extractors(name: str, bands: Sequence[str]) -> list[Any]:
    import light_curve as lc

    b = list(bands)
    cheap = [lc.Amplitude(bands=b), lc.StandardDeviation(bands=b), lc.WeightedMean(bands=b), lc.Skew(bands=b),
             lc.Kurtosis(bands=b), lc.ReducedChi2(bands=b), lc.LinearFit(bands=b), lc.BeyondNStd(1.0, bands=b),
             lc.MaximumSlope(bands=b), lc.Cusum(bands=b), lc.EtaE(bands=b), lc.InterPercentileRange(0.1, bands=b),
             lc.ObservationCount(bands=b)]
    if name == "cheap":
        return cheap
    return [*cheap, lc.BazinFit("lmsder", bands=b), lc.StetsonK(bands=b), lc.OtsuSplit(bands=b), lc.Median(bands=b),
            lc.PercentAmplitude(bands=b)]


PERIODOGRAM_NAMES = ("periodogram_period_0", "periodogram_period_s_to_n_0")


@cache
def _periodogram() -> Any:
    """light-curve's single-band periodogram (its multi-colour one panics on many real light curves
    with few points in a band, light-curve 0.13)."""
    import light_curve as lc

    return lc.Periodogram(peaks=1)


def light_curve_extractor(name: str, survey: str) -> Any:
    """The ``light_curve.Extractor`` (multiband) behind part 1 of a feature set, but for the
    periodogram of the "full" set."""
    import light_curve as lc

    return lc.Extractor(*_extractors(name, SURVEYS[survey]))


def _call(evaluator: Any, args: tuple[np.ndarray, ...]) -> np.ndarray | None:
    """``evaluator(*args)`` with NaN for what is undefined; None where light-curve's Rust code panics
    (it does on some degenerate light curves, e.g. fluxes near the float limits)."""
    try:
        return np.asarray(evaluator(*args, fill_value=math.nan, sorted=True, check=False), dtype=np.float64)
    except Exception:
        raise
    except BaseException as error:  # pyo3's PanicException derives from BaseException
        if type(error).__name__ != "PanicException":
            raise
        return None


def _evaluate(fs: FeatureSet, args: tuple[np.ndarray, ...]) -> np.ndarray:
    """Part 1 of the features: one call of the extractor or, where it panics, one per feature."""
    values = _call(fs._extractor, args)
    if values is None:
        parts = [_call(feature, args) for feature in fs._features]
        values = np.concatenate([np.full(len(f.names), math.nan) if part is None else part
                                 for f, part in zip(fs._features, parts, strict=True)])
    return values


@dataclass(frozen=True)
class FeatureSet:
    """A named, versioned list of features of one survey's bands; see the module doc."""

    name: str
    version: str
    survey: str
    bands: tuple[str, ...]
    names: tuple[str, ...]
    digest: str
    _extractor: Any = field(repr=False, compare=False)
    _features: tuple[Any, ...] = field(repr=False, compare=False)
    _weighted_mean: slice = field(repr=False, compare=False)
    _counts: slice = field(repr=False, compare=False)

    def extract(self, lc: LightCurve) -> np.ndarray:
        """The feature vector of ``lc`` (float64, ``len(names)``); FeatureError for a band not in
        the set's survey."""
        return _extract(self, lc)

    def extract_many(self, lcs: Sequence[LightCurve]) -> np.ndarray:
        """The feature vectors of many light curves, shape ``(len(lcs), len(names))``."""
        out = np.empty((len(lcs), len(self.names)), dtype=np.float64)
        for i, lc in enumerate(lcs):
            out[i] = _extract(self, lc)
        return out


def _pairs(bands: tuple[str, ...]) -> list[tuple[str, str]]:
    return list(pairwise(bands))


GLOBAL_NAMES = ("n_detections", "n_points", "detection_duration", "rise_time", "fall_time", "max_snr", "n_bands",
                "rise_rate", "decline_rate", "nondet_dt", "nondet_depth")


@cache
def feature_set(name: str, survey: str) -> FeatureSet:
    """The feature set ``name`` ("cheap" or "full") for ``survey`` ("ztf" or "lsst")."""
    if name not in FEATURE_SETS:
        raise FeatureError(f"feature set {name!r}: unknown; choose one of {', '.join(FEATURE_SETS)}")
    if survey not in SURVEYS:
        raise FeatureError(f"survey {survey!r}: unknown; choose one of {', '.join(SURVEYS)}")
    bands = SURVEYS[survey]
    import light_curve as lc

    features = tuple(_extractors(name, bands))
    extractor = lc.Extractor(*features)
    lc_names = tuple(extractor.names)
    first = lc_names.index(f"weighted_mean_{bands[0]}")
    counts = lc_names.index(f"observation_count_{bands[0]}")
    if name == "full":
        lc_names = (*lc_names, *PERIODOGRAM_NAMES)
    names = (*lc_names, *(f"peak_rel_mag_{b}" for b in bands), *(f"peak_dt_{b}" for b in bands),
             *(f"color_{kind}_{a}_{b}" for a, b in _pairs(bands) for kind in ("peak", "mean", "latest")),
             *GLOBAL_NAMES, *CONTEXT_NAMES[survey])
    if len(set(names)) != len(names):
        raise AssertionError(f"feature set {name}/{survey}: duplicate feature names")
    version = FEATURE_VERSIONS[name]
    identity = {"name": name, "version": version, "survey": survey, "bands": bands, "names": names}
    return FeatureSet(name, version, survey, bands, names, _digest(identity), extractor, features,
                      slice(first, first + len(bands)), slice(counts, counts + len(bands)))


def _mag(flux: float) -> float:
    return ZERO_POINT - 2.5 * math.log10(flux) if flux > 0 else math.nan


def _extract(fs: FeatureSet, lc: LightCurve) -> np.ndarray:
    time, flux, flux_err, band, detected = lc.time, lc.flux, lc.flux_err, lc.band, lc.detected
    if len(time) > 1 and np.any(time[1:] < time[:-1]):
        order = np.argsort(time, kind="stable")
        time, flux, flux_err, band, detected = time[order], flux[order], flux_err[order], band[order], detected[order]
    if len(time) > 1 and np.any(time[1:] == time[:-1]):
        time, flux, flux_err, band, detected = _merge_repeated(time, flux, flux_err, band, detected)
    nan = math.nan
    n = len(time)
    per_band = {b: np.flatnonzero(band == b) for b in fs.bands}
    if sum(len(i) for i in per_band.values()) != n:
        unknown = sorted(set(band.tolist()) - set(fs.bands))
        raise FeatureError(f"feature set {fs.name}/{fs.survey}: band(s) {', '.join(unknown)} not in "
                           f"{', '.join(fs.bands)}")
    det = np.flatnonzero(detected)
    t0 = time[det[0]] if len(det) else (time[0] if n else 0.0)
    scale = normalisation(flux, flux_err, detected)
    args = (time - t0, flux / scale, flux_err / scale, band)
    lc_values = _evaluate(fs, args)
    lc_values[fs._counts] = [len(per_band[b]) for b in fs.bands]  # 0, not undefined, for a band without points
    if fs.name == "full":
        best = per_band[max(fs.bands, key=lambda b: len(per_band[b]))]  # the first of equals
        periodogram = _call(_periodogram(), (args[0][best], args[1][best], args[2][best])) if len(best) > 1 else None
        if periodogram is None:
            periodogram = np.array([nan, nan])
        lc_values = np.concatenate([lc_values, periodogram])

    peak = det[np.argmax(flux[det])] if len(det) else -1
    t_peak = time[peak] if len(det) else nan
    peak_mag, peak_dt, peak_flux = [], [], {}
    for b in fs.bands:
        idx = per_band[b]
        if len(idx):
            top = idx[np.argmax(flux[idx])]
            peak_flux[b] = flux[top]
            peak_mag.append(_mag(flux[top] / scale) - ZERO_POINT)
            peak_dt.append(time[top] - t_peak)
        else:
            peak_flux[b] = nan
            peak_mag.append(nan)
            peak_dt.append(nan)
    weighted_mean = dict(zip(fs.bands, lc_values[fs._weighted_mean], strict=True))
    colors = []
    for a, b in _pairs(fs.bands):
        colors.append(_mag(peak_flux[a]) - _mag(peak_flux[b]))
        colors.append(_mag(weighted_mean[a]) - _mag(weighted_mean[b]))
        colors.append(_latest_color(time, flux, per_band[a][detected[per_band[a]]],
                                    per_band[b][detected[per_band[b]]]))
    if len(det):
        first, last = time[det[0]], time[det[-1]]
        whole = [len(det), n, last - first, t_peak - first, last - t_peak, float(np.max(flux / flux_err)),
                 len(set(band[det].tolist())), *_rates(time, flux, det[band[det] == band[peak]], peak),
                 *_last_nondetection(lc, time, flux, flux_err, detected, det[0])]
    else:
        whole = [0, n, nan, nan, nan, float(np.max(flux / flux_err)) if n else nan, 0, nan, nan, nan, nan]
    context = _context_features(fs.survey, lc.context, _mag(flux[peak]) if len(det) else nan)
    out = np.concatenate([lc_values, peak_mag, peak_dt, colors, whole, context]).astype(np.float64, copy=False)
    out[~np.isfinite(out)] = nan
    return out


def normalisation(flux: np.ndarray, flux_err: np.ndarray, detected: np.ndarray) -> float:
    """The flux every flux is divided by before the light-curve features, so that they do not depend on
    the object's brightness: the largest detected flux if positive, else the largest absolute flux, else
    the largest flux error (1 without a point)."""
    if detected.any() and (top := float(np.max(flux[detected]))) > 0:
        return top
    for values in (np.abs(flux), flux_err):
        top = float(np.max(values)) if len(values) else 0.0
        if top > 0 and math.isfinite(top):
            return top
    return 1.0


def _rates(time: np.ndarray, flux: np.ndarray, band_det: np.ndarray, peak: int) -> tuple[float, float]:
    """Rise and decline rates (mag/day) of the peak's band: from its first detection to the peak, from
    the peak to its last detection (NaN where the two are the same time)."""
    first, last = band_det[0], band_det[-1]
    rise = (_mag(flux[first]) - _mag(flux[peak])) / (time[peak] - time[first]) if time[peak] > time[first] else math.nan
    decline = (_mag(flux[last]) - _mag(flux[peak])) / (time[last] - time[peak]) if time[last] > time[peak] else math.nan
    return rise, decline


def _last_nondetection(lc: LightCurve, time: np.ndarray, flux: np.ndarray, flux_err: np.ndarray,
                       detected: np.ndarray, first: int) -> tuple[float, float]:
    """Days from the last non-detection (an upper limit, or an undetected point whose 5-sigma limit is
    ``25 - 2.5 log10(5 flux_err)``) before the first detection to it, and how much deeper its limit was
    than the first detection (magnitudes, clipped to +- `NONDETECTION_DEPTH_CLIP`)."""
    t_first = time[first]
    before = np.flatnonzero(~detected & (time < t_first))
    candidates = [(float(time[i]), ZERO_POINT - 2.5 * math.log10(DETECTION_SNR * flux_err[i])) for i in before]
    limits = lc.limit_time < t_first
    candidates += zip(lc.limit_time[limits].tolist(), lc.limit_mag[limits].tolist(), strict=True)
    if not candidates:
        return math.nan, math.nan
    t_limit, limit_mag = max(candidates)
    depth = limit_mag - _mag(flux[first])
    return t_first - t_limit, float(np.clip(depth, -NONDETECTION_DEPTH_CLIP, NONDETECTION_DEPTH_CLIP))


def _merge_repeated(time: np.ndarray, flux: np.ndarray, flux_err: np.ndarray, band: np.ndarray,
                    detected: np.ndarray) -> tuple[np.ndarray, ...]:
    """Points at one time in one band (sorted by time) as one: their inverse-variance weighted mean,
    detected if any of them is."""
    keys: dict[tuple[float, str], list[int]] = {}
    for i, key in enumerate(zip(time.tolist(), band.tolist(), strict=True)):
        keys.setdefault(key, []).append(i)
    groups = list(keys.values())
    weights = [1 / flux_err[g] ** 2 for g in groups]
    return (np.array([time[g[0]] for g in groups]),
            np.array([np.sum(w * flux[g]) / np.sum(w) for g, w in zip(groups, weights, strict=True)]),
            np.array([1 / math.sqrt(np.sum(w)) for w in weights]),
            np.array([band[g[0]] for g in groups], dtype=band.dtype),
            np.array([bool(detected[g].any()) for g in groups]))


def _latest_color(time: np.ndarray, flux: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Colour of band a's latest detection and band b's detection nearest to it in time (indices)."""
    if not len(a) or not len(b):
        return math.nan
    latest = a[-1]
    nearest = b[np.argmin(np.abs(time[b] - time[latest]))]
    if abs(time[nearest] - time[latest]) > LATEST_COLOR_WINDOW:
        return math.nan
    return _mag(flux[latest]) - _mag(flux[nearest])

