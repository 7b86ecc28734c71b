"""Observer-frame colours of a supernova light curve at fixed phases, and the seed's colour cut.

Two interpolations, both in the **observer frame** (ZTF bandpasses, AB magnitudes), at the phases
``t0 - 7``, ``t0`` and ``t0 + 7`` observer-frame days, ``t0`` being the fitted model's phase 0:

- **the fitted model** (`model_colours`): the sncosmo model of the fit evaluated per band with
  ``Model.bandmag``; its errors come from the fit's covariance, propagated with a numerical
  Jacobian (`model_colour_errors`). The model interpolates (and, in a band without data,
  extrapolates) the light curve with the shape of a SN Ia;
- **the data** (`gp_fluxes`, `flux_colours`): a Gaussian process in flux space per band (squared
  exponential kernel, amplitude and length scale chosen by marginal likelihood on a small grid,
  the measured flux errors as noise, zero mean: a difference-image flux is zero without the
  transient). Its colour has an error from the GP's predictive variance; it is None where a
  band's flux is not above zero at 1 sigma (no colour can be measured).

The model colours decide; the GP colours are the data-driven check (their tension is reported).

Heavy imports (numpy, sncosmo) are inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["COLOURS", "COLOUR_CUTS", "PHASES", "colour_significance", "flux_colours", "gp_fluxes",
           "model_colour_errors", "model_colours", "phase_key"]

#: The colours (first band minus second band), by name
COLOURS: dict[str, tuple[str, str]] = {"g-r": ("ztfg", "ztfr"), "g-i": ("ztfg", "ztfi"), "r-i": ("ztfr", "ztfi")}
#: Observer-frame days from t0
PHASES: tuple[float, ...] = (-7.0, 0.0, 7.0)
#: The seed's table: a candidate's colour is redder (greater) than the cut, by phase key and colour
COLOUR_CUTS: dict[str, dict[str, float]] = {
    "t0-7": {"g-r": -0.08, "g-i": -0.08, "r-i": -0.34},
    "t0": {"g-r": 0.12, "g-i": 0.06, "r-i": -0.28},
    "t0+7": {"g-r": 0.33, "g-i": 0.33, "r-i": -0.23},
}
_MAG = 2.5 / math.log(10)  # d(mag) / d(ln flux)


def phase_key(phase: float) -> str:
    """'t0-7', 't0', 't0+7' for -7, 0, 7."""
    return "t0" if phase == 0 else f"t0{phase:+g}"


def model_colours(model: Any, bandpasses: Mapping[str, Any], t0: float, phases: Sequence[float] = PHASES,
                  colours: Mapping[str, tuple[str, str]] = COLOURS) -> dict[str, dict[str, float | None]]:
    """``{phase key: {colour: m_first - m_second}}`` of an sncosmo ``model`` (AB), at ``t0 + phase``
    (MJD); ``bandpasses`` maps band name to sncosmo Bandpass. None where the model does not cover a
    band or its flux there is not positive."""
    import numpy as np

    result: dict[str, dict[str, float | None]] = {}
    for phase in phases:
        time = t0 + phase
        mags: dict[str, float | None] = {}
        for band in {b for pair in colours.values() for b in pair}:
            try:
                with np.errstate(all="ignore"):
                    value = float(model.bandmag(bandpasses[band], "ab", time))
            except ValueError:  # the band is outside the model's wavelength range at this redshift
                value = math.nan
            mags[band] = value if math.isfinite(value) else None
        result[phase_key(phase)] = {name: _difference(mags[first], mags[second])
                                    for name, (first, second) in colours.items()}
    return result


def _difference(first: float | None, second: float | None) -> float | None:
    return None if first is None or second is None else first - second


def model_colour_errors(model: Any, bandpasses: Mapping[str, Any], names: Sequence[str],
                        covariance: Sequence[Sequence[float]], phases: Sequence[float] = PHASES,
                        colours: Mapping[str, tuple[str, str]] = COLOURS) -> dict[str, dict[str, float | None]]:
    """1-sigma errors of `model_colours` from the fit's ``covariance`` over the parameters ``names``
    (e.g. t0, x0, x1, c): sigma^2 = J C J^T with J the colours' derivatives (central differences with
    a step of 1/100 of each parameter's sigma). The phases follow t0 (t0 is among the
    parameters), as in the measurement. The model is restored afterwards."""
    import numpy as np

    matrix = np.asarray(covariance, dtype=float)
    saved = dict(zip(model.param_names, model.parameters, strict=True))
    keys = [(phase_key(p), c) for p in phases for c in colours]

    def vector() -> Any:
        values = model_colours(model, bandpasses, float(model.get("t0")), phases, colours)
        return np.array([np.nan if values[p][c] is None else values[p][c] for p, c in keys])

    jacobian = np.zeros((len(keys), len(names)))
    try:
        for column, name in enumerate(names):
            step = max(1e-2 * math.sqrt(max(matrix[column, column], 0.0)), 1e-12 * max(abs(saved[name]), 1e-30))
            model.set(**{name: saved[name] + step})
            upper = vector()
            model.set(**{name: saved[name] - step})
            lower = vector()
            model.set(**{name: saved[name]})
            jacobian[:, column] = (upper - lower) / (2 * step)
    finally:
        model.set(**saved)
    variance = np.einsum("ij,jk,ik->i", jacobian, matrix, jacobian)
    errors: dict[str, dict[str, float | None]] = {phase_key(p): {} for p in phases}
    for (phase, colour), value in zip(keys, variance, strict=True):
        errors[phase][colour] = float(math.sqrt(value)) if math.isfinite(value) and value >= 0 else None
    return errors


def gp_fluxes(time: ArrayLike, flux: ArrayLike, flux_err: ArrayLike, at: Sequence[float],
              length_scales: Sequence[float] = (5.0, 10.0, 20.0, 40.0)) -> tuple[list[float], list[float]]:
    """Gaussian-process mean and 1-sigma error of the flux at the times ``at`` (same units as the
    input), from one band's measurements. Kernel: ``A^2 exp(-(t - t')^2 / (2 l^2))`` plus each
    point's ``flux_err^2``; ``A`` and ``l`` maximise the marginal likelihood over a grid (``l`` in
    ``length_scales`` days, ``A`` from 0.5 to 2 times the largest |flux|). Zero mean. With no
    points: mean 0 and infinite error."""
    import numpy as np

    t, y, e = (np.asarray(v, dtype=float) for v in (time, flux, flux_err))
    targets = np.asarray(at, dtype=float)
    if len(t) == 0:
        return [0.0] * len(targets), [math.inf] * len(targets)
    peak = float(np.max(np.abs(y))) or float(np.max(e))
    best: tuple[float, Any, Any, float, float] | None = None
    for length in length_scales:
        for amplitude in peak * np.array([0.5, 1.0, 2.0]):
            kernel = amplitude**2 * np.exp(-0.5 * ((t[:, None] - t[None, :]) / length) ** 2) + np.diag(e**2)
            try:
                factor = np.linalg.cholesky(kernel)
            except np.linalg.LinAlgError:
                continue
            alpha = np.linalg.solve(factor.T, np.linalg.solve(factor, y))
            likelihood = -0.5 * float(y @ alpha) - float(np.log(np.diag(factor)).sum())
            if best is None or likelihood > best[0]:
                best = (likelihood, factor, alpha, float(amplitude), float(length))
    if best is None:
        return [0.0] * len(targets), [math.inf] * len(targets)
    _, factor, alpha, amplitude, length = best
    cross = amplitude**2 * np.exp(-0.5 * ((targets[:, None] - t[None, :]) / length) ** 2)
    mean = cross @ alpha
    solved = np.linalg.solve(factor, cross.T)
    variance = np.maximum(amplitude**2 - (solved**2).sum(axis=0), 0.0)
    return [float(v) for v in mean], [float(v) for v in np.sqrt(variance)]


def flux_colours(fluxes: Mapping[str, tuple[float, float]], colours: Mapping[str, tuple[str, str]] = COLOURS
                 ) -> dict[str, dict[str, float] | None]:
    """``{colour: {"value", "error"}}`` (mag) from ``{band: (flux, error)}`` in one zero point;
    None for a colour with a band missing or whose flux is not above zero at 1 sigma."""
    result: dict[str, dict[str, float] | None] = {}
    for name, (first, second) in colours.items():
        if first not in fluxes or second not in fluxes:
            result[name] = None
            continue
        (f1, e1), (f2, e2) = fluxes[first], fluxes[second]
        if not (f1 > e1 and f2 > e2):
            result[name] = None
            continue
        result[name] = {"value": -2.5 * math.log10(f1 / f2), "error": _MAG * math.hypot(e1 / f1, e2 / f2)}
    return result


def colour_significance(value: float | None, error: float | None, cut: float) -> float | None:
    """(value - cut) / error: how many sigma redder than the cut (negative: bluer); None when unknown."""
    if value is None or error is None or not error > 0:
        return None
    return (value - cut) / error
