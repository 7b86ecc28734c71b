"""T2LensedSNColours: is a supernova redder, and brighter, than a SN Ia at its host's redshift could be?

A tied T2 unit on a state. It runs after `ampel_sncosmo.fit.T2SNCosmoFit` (a SALT2 fit: t0 and the
model) and `ampel_catalogs.hosts.T2HostGalaxy` (the host: name, redshift, separation) on the same
state, and computes:

- the observer-frame colours g-r, g-i, r-i at t0-7, t0, t0+7 (observer-frame days) of the fitted
  model (sncosmo ``bandmag``), with errors from the fit's covariance, and the same colours of a
  Gaussian process per band in flux space as a data-driven check (`ampel_contrib_lensed_sne.colours`);
- each colour against the seed's cut (a lensed candidate is redder: colour > cut), with its
  significance (colour - cut) / error, the number of cuts passed, and a combined significance
  (Stouffer: the sum of the significances over the square root of their number);
- the magnification estimate: the fitted SN's peak brightness over that of a standard SN Ia at the
  host's redshift: ``x0`` of the fit over ``x0`` of a SALT2 SN Ia with the fitted ``x1`` and ``c``
  whose peak absolute magnitude follows Tripp's standardisation, M_B = -19.3 - alpha x1 + beta c
  (Bessell B, AB, Planck18 distances). A lensed SN fitted at the lens's redshift needs a red ``c``
  to match its colours and is too bright for that colour: its estimate is large. Per band, the
  fitted model's peak flux over that of a SN Ia with x1 = 0, c = 0 at the host's redshift is
  reported as well (``per_band``);
- ``candidate``: the fit succeeded, at least ``min_cuts_passed`` cuts passed, a host with a redshift
  was found (unless ``require_host`` is false) and the magnification estimate is at least
  ``min_magnification``.

Why the magnification test: the seed's colour table is about as red as a normal SN Ia (c = 0) at
z ~ 0.25 is in the observer frame, so an unlensed SN Ia in a host at z >~ 0.25 passes the colour
cuts as well; what tells it from a lensed one behind a lens at that redshift is that it is no
brighter than a SN Ia there could be (docs/tutorial-lensed-sne.md has the numbers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ampel_core.units import JSON, TiedStateUnit, UnitRef
from pydantic import Field, model_validator

from ampel_contrib_lensed_sne.colours import (
    COLOUR_CUTS,
    COLOURS,
    PHASES,
    colour_significance,
    flux_colours,
    gp_fluxes,
    model_colour_errors,
    model_colours,
    phase_key,
)
from ampel_contrib_lensed_sne.simulate import ABSOLUTE_MAGNITUDE

if TYPE_CHECKING:
    from ampel_core.views import StateView

__all__ = ["DEFAULT_FIT", "DEFAULT_HOST", "T2LensedSNColours"]

DEFAULT_FIT: dict[str, Any] = {
    "source": "salt2", "source_version": "2.4", "bounds": {"x1": [-5, 5], "c": [-0.5, 3.0]}, "min_detections": 5,
    "minsnr": 3.0,
    "redshift": {"kind": "dependency", "unit": "T2HostGalaxy", "key": "z", "range": [0.01, 0.5]},
}
DEFAULT_HOST: dict[str, Any] = {"catalog": "gwgc"}


class T2LensedSNColours(TiedStateUnit):
    """Colours at t0-7, t0, t0+7 against the seed's cut, host and magnification (module docstring).

    Result: ``colours`` (``{phase: {colour: {"value", "error", "cut", "significance", "passed"}}}``,
    phases ``t0-7``, ``t0``, ``t0+7``, colours ``g-r``, ``g-i``, ``r-i``; mag, AB, observer frame),
    ``gp_colours`` (``{phase: {colour: {"value", "error"} or None}}``), ``gp_tension`` (the largest
    |model - GP| / combined error, or None), ``cuts_passed``, ``cuts_evaluated``, ``significance``
    (combined), ``t0`` (MJD), ``fit`` (``{"success", "z", "chi2", "ndof", "parameters"}``), ``host``
    (``{"name", "z", "distance", "separation", "dlr"}`` or None), ``magnification``
    (``{"value", "method", "alpha", "beta", "per_band", "host_z"}`` or None), ``candidate`` (bool), ``reasons`` (why
    not a candidate), ``inputs`` (``{"state", "fit", "host"}``: the state and the units whose
    results on it this result used).
    """

    fit: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_FIT),
                                description="Config of the T2SNCosmoFit this unit reads (its t0 and model); a "
                                            "redshift from T2HostGalaxy without a config gets `host`.")
    host: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_HOST),
                                 description="Config of the T2HostGalaxy this unit reads (host and redshift).")
    cuts: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in COLOUR_CUTS.items()},
        description="Colour cuts by phase ('t0-7', 't0', 't0+7') and colour ('g-r', 'g-i', 'r-i'); a "
                    "candidate's colour is greater. Default: the seed's table.")
    min_cuts_passed: int = Field(7, ge=0, le=9, description="Cuts a candidate passes at least.")
    require_host: bool = Field(True, description="A candidate needs a host galaxy with a redshift.")
    min_magnification: float = Field(
        2.0, ge=0, description="Smallest magnification estimate of a candidate (2: 0.75 mag brighter than a standard "
                               "SN Ia at the host's redshift, five times the scatter of 0.15 mag after "
                               "standardisation); 0: no magnification test.")
    alpha: float = Field(0.141, description="Tripp's stretch coefficient (Betoule et al. 2014) for the magnification.")
    beta: float = Field(3.101, description="Tripp's colour coefficient (Betoule et al. 2014) for the magnification.")

    @model_validator(mode="before")
    @classmethod
    def _fit_at_the_host_redshift(cls, data: Any) -> Any:
        """A fit whose redshift comes from T2HostGalaxy without a config takes this unit's ``host``
        config: the fit then uses the very host result this unit reads."""
        if not isinstance(data, dict):
            return data
        fit, host = data.get("fit", DEFAULT_FIT), data.get("host", DEFAULT_HOST)
        if not (isinstance(fit, dict) and isinstance(host, dict)):
            return data  # the field validation says what is wrong
        redshift = fit.get("redshift")
        if isinstance(redshift, dict) and redshift.get("kind") == "dependency" \
                and redshift.get("unit") == "T2HostGalaxy" and redshift.get("config") is None:
            fit = {**fit, "redshift": {**redshift, "config": dict(host)}}
        return {**data, "fit": dict(fit)}

    def dependencies(self) -> list[UnitRef]:
        return [UnitRef("T2SNCosmoFit", self.fit), UnitRef("T2HostGalaxy", self.host)]

    def process(self, state: StateView, dependencies: Mapping[str, JSON]) -> JSON:
        fit = dependencies.get("T2SNCosmoFit") or {}
        host = _host(dependencies.get("T2HostGalaxy"))
        result: JSON = {"t0": None, "fit": None, "host": host, "colours": None, "gp_colours": None, "gp_tension": None,
                        "cuts_passed": 0, "cuts_evaluated": 0, "significance": None, "magnification": None,
                        "candidate": False, "reasons": [],
                        "inputs": {"state": state.id, "fit": "T2SNCosmoFit", "host": "T2HostGalaxy"}}
        if not fit.get("parameters") or fit.get("skipped"):
            result["reasons"].append(f"no fit: {fit.get('message', 'no T2SNCosmoFit result')}")
            return result
        model, bandpasses = self._model(fit)
        t0 = float(fit["parameters"]["t0"])
        result["t0"] = t0
        result["fit"] = {key: fit.get(key) for key in ("success", "chi2", "ndof", "parameters")}
        result["fit"]["z"] = fit["parameters"].get("z")
        self._colours(result, model, bandpasses, fit, t0)
        self._gp(result, state, t0)
        result["magnification"] = self._magnification(model, bandpasses, fit, host)
        result["reasons"] = self._reasons(result, fit, host)
        result["candidate"] = not result["reasons"]
        return result

    def _model(self, fit: JSON) -> tuple[Any, dict[str, Any]]:
        """The fitted sncosmo model (source, version and every parameter of the fit result) and the
        ZTF bandpasses, from the files T2SNCosmoFit reads."""
        import sncosmo
        from ampel_sncosmo.datafiles import load_bandpass, load_source, search_path

        folders = search_path(self.fit.get("data_dir"))
        source = load_source(fit["source"], fit["source_version"], folders).value
        parameters = dict(fit["parameters"])
        if "mwebv" in parameters:
            model = sncosmo.Model(source, effects=[sncosmo.CCM89Dust()], effect_names=["mw"], effect_frames=["obs"])
        else:
            model = sncosmo.Model(source)
        model.set(**parameters)
        bands = {b for pair in COLOURS.values() for b in pair}
        return model, {b: load_bandpass(b, folders).value for b in bands}

    def _colours(self, result: JSON, model: Any, bandpasses: dict[str, Any], fit: JSON, t0: float) -> None:
        values = model_colours(model, bandpasses, t0)
        covariance = fit.get("covariance")
        errors = (model_colour_errors(model, bandpasses, covariance["names"], covariance["matrix"])
                  if covariance else {p: dict.fromkeys(COLOURS) for p in values})
        colours: dict[str, dict[str, Any]] = {}
        significances = []
        for phase, by_colour in values.items():
            colours[phase] = {}
            for name, value in by_colour.items():
                cut = self.cuts[phase][name]
                error = errors[phase][name]
                significance = colour_significance(value, error, cut)
                colours[phase][name] = {"value": value, "error": error, "cut": cut, "significance": significance,
                                        "passed": None if value is None else value > cut}
                if value is not None:
                    result["cuts_evaluated"] += 1
                    result["cuts_passed"] += value > cut
                if significance is not None:
                    significances.append(significance)
        result["colours"] = colours
        if significances:
            result["significance"] = sum(significances) / math.sqrt(len(significances))

    def _gp(self, result: JSON, state: StateView, t0: float) -> None:
        """The data-driven colours and their largest tension with the model's."""
        import numpy as np

        table = state.table()
        good = np.isfinite(np.asarray(table["flux"])) & (np.asarray(table["flux_err"]) > 0) & (table["zpsys"] == "ab")
        table = table[good]
        at = [t0 + phase for phase in PHASES]
        fluxes: dict[str, list[tuple[float, float]]] = {}
        for band in {b for pair in COLOURS.values() for b in pair}:
            rows = table[table["band"] == band]
            if len(rows):
                scale = 10 ** (-0.4 * (np.asarray(rows["zp"]) - 25.0))  # to zp 25
                mean, error = gp_fluxes(rows["time"], np.asarray(rows["flux"]) * scale,
                                        np.asarray(rows["flux_err"]) * scale, at)
                fluxes[band] = list(zip(mean, error, strict=True))
        gp: dict[str, Any] = {}
        tensions = []
        for index, phase in enumerate(PHASES):
            key = phase_key(phase)
            gp[key] = flux_colours({band: values[index] for band, values in fluxes.items()})
            for name, measured in gp[key].items():
                modelled = result["colours"][key][name]
                if measured and modelled["value"] is not None:
                    combined = math.hypot(measured["error"], modelled["error"] or 0.0)
                    if combined > 0:
                        tensions.append(abs(measured["value"] - modelled["value"]) / combined)
        result["gp_colours"] = gp
        result["gp_tension"] = max(tensions) if tensions else None

    def _magnification(self, model: Any, bandpasses: dict[str, Any], fit: JSON, host: JSON | None) -> JSON | None:
        """How much brighter the fitted SN is than a standard SN Ia at the host's redshift (see the class)."""
        if host is None or host.get("z") is None or not host["z"] > 0:
            return None
        import numpy as np

        from ampel_contrib_lensed_sne.simulate import salt2_model

        z, t0 = float(host["z"]), float(model.get("t0"))
        parameters = fit["parameters"]
        x1, c = float(parameters.get("x1", 0.0)), float(parameters.get("c", 0.0))
        # the standardised value: x0 of the fit over x0 of a SN Ia with the fitted x1 and c whose peak
        # M_B follows Tripp's relation, at the host's redshift
        tripp = salt2_model(z, t0, x1=x1, c=c, absolute_magnitude=ABSOLUTE_MAGNITUDE - self.alpha * x1 + self.beta * c)
        value = float(parameters["x0"]) / float(tripp.get("x0")) if parameters.get("x0", 0) > 0 else None
        # and, per band, the fitted model's peak flux over that of a SN Ia with x1 = 0, c = 0
        reference = salt2_model(z, t0)
        times = t0 + np.arange(-20.0, 60.0, 0.5)
        per_band: dict[str, float | None] = {}
        for band, bandpass in bandpasses.items():
            peaks = []
            for item in (model, reference):
                covered = item.minwave() <= bandpass.minwave() and bandpass.maxwave() <= item.maxwave()
                flux = item.bandflux(bandpass, times, zp=25.0, zpsys="ab") if covered else [math.nan]
                peaks.append(float(np.max(flux)))
            ratio = peaks[0] / peaks[1] if peaks[1] > 0 else math.nan
            per_band[band] = ratio if math.isfinite(ratio) else None
        return {"value": value if value is not None and math.isfinite(value) else None, "method": "tripp",
                "alpha": self.alpha, "beta": self.beta, "per_band": per_band, "host_z": z}

    def _reasons(self, result: JSON, fit: JSON, host: JSON | None) -> list[str]:
        reasons = []
        if not fit.get("success"):
            reasons.append(f"fit did not converge: {fit.get('message')}")
        if result["cuts_passed"] < self.min_cuts_passed:
            reasons.append(f"{result['cuts_passed']} colour cuts passed < {self.min_cuts_passed}")
        if self.require_host and (host is None or host.get("z") is None):
            reasons.append("no host galaxy with a redshift")
        magnification = (result["magnification"] or {}).get("value")
        if self.min_magnification > 0 and (magnification is None or magnification < self.min_magnification):
            reasons.append(f"magnification estimate {magnification} < {self.min_magnification}")
        return reasons


def _host(body: JSON | None) -> JSON | None:
    if not body or body.get("name") is None:
        return None
    return {key: body.get(key) for key in ("name", "z", "distance", "separation", "dlr", "projected_distance")}
