"""T2SNCosmoFit: fit an sncosmo model (SALT2, SALT3, any source by name and version) to a state's
light curve, offline, with the model and bandpass files in the unit's trace.

sncosmo, astropy and numpy are imported inside methods: this module is imported by
``ampel config build``, which must stay fast.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from ampel_core.units import JSON, TiedStateUnit, UnitRef
from ampel_sncosmo.datafiles import SearchPath, load_bandpass, load_magsystem, load_source, search_path

if TYPE_CHECKING:
    from ampel_core.views import StateView

__all__ = ["DEFAULT_Z_RANGE", "LSST_BANDS", "SDSS_BANDS", "ZTF_BANDS", "DependencyRedshift", "FittedRedshift",
           "FixedRedshift", "Range", "Redshift", "T2SNCosmoFit"]

ZTF_BANDS = ("ztfg", "ztfr", "ztfi")
LSST_BANDS = ("lsstu", "lsstg", "lsstr", "lssti", "lsstz", "lssty")
SDSS_BANDS = ("sdssu", "sdssg", "sdssr", "sdssi", "sdssz")
DEFAULT_Z_RANGE = (0.01, 0.3)



def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    if not value[0] < value[1]:
        raise ValueError(f"lower bound {value[0]} must be below upper bound {value[1]}")
    return value


Range = Annotated[tuple[float, float], AfterValidator(_ordered)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedRedshift(_Config):
    """The redshift is a known value, held fixed in the fit."""

    kind: Literal["fixed"] = "fixed"
    value: float = Field(ge=0, description="Redshift.")


class FittedRedshift(_Config):
    """The redshift is a fit parameter, bounded by ``range``; the fit starts at its midpoint."""

    kind: Literal["fit"] = "fit"
    range: Range = Field(DEFAULT_Z_RANGE, description="Bounds (min, max) of the fitted redshift.")

    @field_validator("range")
    @classmethod
    def _non_negative(cls, value: Range) -> Range:
        if value[0] < 0:
            raise ValueError("a redshift range cannot start below 0")
        return value


class DependencyRedshift(_Config):
    """The redshift comes from the result of another T2 unit on the same state or stock (e.g. a
    host-galaxy match), which the runtime runs first; it is held fixed in the fit."""

    kind: Literal["dependency"] = "dependency"
    unit: str = Field(description="Name of the T2 unit whose result holds the redshift.")
    config: dict[str, Any] | None = Field(None, description="That unit's config (its defaults when absent).")
    key: str = Field("z", description="Dotted path of the redshift in that unit's result body, e.g. 'host.z'.")
    range: Range | None = Field(
        None, description="When the result has no redshift: fit it within this range; when absent: skip the fit.")


Redshift = Annotated[FixedRedshift | FittedRedshift | DependencyRedshift, Field(discriminator="kind")]


class T2SNCosmoFit(TiedStateUnit):
    """Fit an sncosmo source to the detections of a state with `sncosmo.fit_lc` (iminuit).

    The light curve is the state's detections (upper limits left out) with finite flux and positive
    flux error, in the configured ``bands`` and ``magsystems``, inside ``time_window`` and without
    any of the ``exclude_tags``. Fewer than ``min_detections`` points or ``min_bands`` bands give a
    skipped result, not an error.

    Result body (JSON): ``success`` (the fit converged), ``skipped`` (no fit was tried), ``message``,
    ``source``, ``source_version``, ``parameters`` (every model parameter, fitted or fixed),
    ``fit_parameters``, ``errors`` (1-sigma, fitted parameters), ``covariance``
    (``{"names": [...], "matrix": [[...]]}``), ``chi2``, ``ndof``, ``ncall``, ``redshift``
    (``{"origin": "fixed"|"dependency"|"fit", "value": z, ...}``), ``npoints``, ``points_per_band``,
    ``excluded`` (points left out, by reason), ``data_window`` (``{"first", "last"}``: MJD of the first
    and last point fitted), ``mwebv``, ``modelcov`` and ``plot`` (path of the PNG, or None).
    Time is MJD (days); fluxes are in the datapoints' ``zp``/``zpsys`` system. ``t0`` is the MJD of
    the model's phase 0 (B-band peak for SALT).

    Files are read from ``data_dir``, ``$SNCOSMO_DATA_DIR`` or the files shipped with this package
    (see `ampel_sncosmo.datafiles`), never downloaded; `resources` declares them for the trace.
    """

    source: str = Field("salt2", description="sncosmo source name, e.g. 'salt2', 'salt3', 'hsiao'.")
    source_version: str = Field(
        "2.4", description="sncosmo source version, e.g. '2.4' for salt2, '2.0' for salt3. Always explicit: "
                           "sncosmo's 'latest' may not be on disk.")
    fit_parameters: list[str] | None = Field(
        None, description="Parameters to fit; default: t0 and every source parameter (salt2: x0, x1, c). "
                          "z is added when the redshift is fitted.")
    bounds: dict[str, Range] = Field(
        default_factory=dict, description="Bounds (min, max) of fitted parameters, e.g. {x1: [-5, 5], c: [-0.5, 1]}; "
                                          "the redshift's come from `redshift`.")
    redshift: Redshift = Field(FittedRedshift(range=DEFAULT_Z_RANGE), description="Where the redshift comes from.")
    bands: list[str] = Field(
        default_factory=lambda: [*ZTF_BANDS, *LSST_BANDS, *SDSS_BANDS],
        description="sncosmo bandpass names fitted; points in other bands are left out. Their files are resources.")
    exclude_tags: list[str] = Field(
        default_factory=list, description="Leave out datapoints with any of these tags, e.g. ['forced'] to fit "
                                          "alert photometry only.")
    magsystems: list[str] = Field(
        default_factory=lambda: ["ab"], description="Magnitude systems (zpsys) accepted; others are left out.")
    min_detections: int = Field(5, ge=1, description="Minimum number of points to fit.")
    min_bands: int = Field(2, ge=1, description="Minimum number of distinct bands among them.")
    time_window: tuple[float | None, float | None] = Field(
        (None, None), description="Only points with first <= time <= last (MJD); None: open.")
    phase_range: Range | None = Field(
        None, description="Rest-frame phase window (days from t0) of the points fitted, iterated by sncosmo.")
    mwebv: float = Field(0.0, ge=0, description="Milky Way E(B-V) (mag), CCM89 dust in the observer frame; 0: none.")
    mw_r_v: float = Field(3.1, gt=0, description="Milky Way R_V of the CCM89 dust.")
    modelcov: bool = Field(False, description="Include the model covariance in the fit (slower; sncosmo iterates).")
    minsnr: float = Field(5.0, ge=0, description="S/N of the points sncosmo uses to guess t0 and amplitude.")
    maxcall: int = Field(10000, ge=1, description="Maximum function calls of the minimizer.")
    plot_dir: str | None = Field(None, description="Write a PNG of data and model to <plot_dir>/<state id>.png.")
    data_dir: str | None = Field(None, description="Folder with sncosmo data files (SNCOSMO_DATA_DIR layout), "
                                                   "searched before $SNCOSMO_DATA_DIR and the shipped files.")

    @model_validator(mode="after")
    def _redshift_only_in_redshift(self) -> T2SNCosmoFit:
        if "z" in self.bounds or "z" in (self.fit_parameters or ()):
            raise ValueError("set the redshift with `redshift` ({kind: fit, range: [min, max]} to fit it), "
                             "not with bounds or fit_parameters")
        first, last = self.time_window
        if first is not None and last is not None and first > last:
            raise ValueError(f"time_window: first {first} is after last {last}")
        return self

    def dependencies(self) -> list[UnitRef]:
        if isinstance(self.redshift, DependencyRedshift):
            return [UnitRef(self.redshift.unit, self.redshift.config)]
        return []

    def _folders(self) -> SearchPath:
        return search_path(self.data_dir)

    def resources(self) -> dict[str, Path]:
        """The model, bandpass and magnitude-system files used, by sncosmo relative path."""
        folders = self._folders()
        loaded = [load_source(self.source, self.source_version, folders),
                  *(load_bandpass(band, folders) for band in self.bands),
                  *(load_magsystem(name, folders) for name in self.magsystems)]
        return {name: path for item in loaded for name, path in item.files.items()}

    def _model(self, folders: SearchPath) -> Any:
        """A new sncosmo Model of the source (with Milky Way dust when ``mwebv`` > 0)."""
        import sncosmo

        source = load_source(self.source, self.source_version, folders).value
        if self.mwebv > 0:
            model = sncosmo.Model(source, effects=[sncosmo.CCM89Dust()], effect_names=["mw"], effect_frames=["obs"])
            model.set(mwebv=self.mwebv, mwr_v=self.mw_r_v)
        else:
            model = sncosmo.Model(source)
        return model

    def _vary(self, model: Any, fit_z: bool) -> list[str]:
        """The parameters to fit, checked against the model's."""
        names = list(self.fit_parameters or ["t0", *model.source.param_names])
        allowed = ["t0", *model.source.param_names]  # z comes from `redshift`, Milky Way dust is fixed
        unknown = [n for n in [*names, *self.bounds] if n not in allowed]
        if unknown:
            raise ValueError(f"T2SNCosmoFit: {', '.join(map(repr, unknown))} not parameters of source "
                             f"'{self.source}' {self.source_version}; it has {', '.join(allowed)}")
        return ["z", *names] if fit_z else names

    def _redshift(self, dependencies: Mapping[str, JSON]) -> tuple[float | None, Range | None, dict[str, Any]]:
        """(fixed value, fit range, description) of the redshift; both None: no redshift to be had."""
        spec = self.redshift
        if isinstance(spec, FixedRedshift):
            return spec.value, None, {"origin": "fixed", "value": spec.value}
        if isinstance(spec, FittedRedshift):
            return None, spec.range, {"origin": "fit", "range": list(spec.range)}
        value: Any = dependencies.get(spec.unit)
        for part in spec.key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        described = {"unit": spec.unit, "key": spec.key}
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
            return float(value), None, {"origin": "dependency", "value": float(value), **described}
        if spec.range:
            return None, spec.range, {"origin": "fit", "range": list(spec.range), "dependency_value": value, **described}
        return None, None, {"origin": "dependency", "value": None, **described}

    def _select(self, state: StateView) -> tuple[dict[str, Any], dict[str, int]]:
        """The columns (numpy arrays: time, band, flux, flux_err, zp, zpsys) of the points to fit,
        sorted by time, and the number of points left out by reason."""
        import numpy as np

        excluded: dict[str, int] = {}
        if self.exclude_tags:
            from ampel_core.views import light_curve_table

            unwanted = set(self.exclude_tags)
            detections = [dp for dp in state.datapoints if not dp.upper_limit]
            kept = [dp for dp in detections if unwanted.isdisjoint(dp.tags)]
            if len(kept) < len(detections):
                excluded["excluded_tag"] = len(detections) - len(kept)
            table = light_curve_table(kept)
        else:
            table = state.table()
        columns = {name: np.asarray(table[name]) for name in ("time", "band", "flux", "flux_err", "zp", "zpsys")}
        time, flux, flux_err = columns["time"], columns["flux"], columns["flux_err"]
        first, last = self.time_window
        masks = {  # reason -> points that pass the test
            "invalid_flux": np.isfinite(flux) & np.isfinite(flux_err) & (flux_err > 0),
            "band_not_configured": np.isin(columns["band"], self.bands),
            "magsystem_not_configured": np.isin(columns["zpsys"], self.magsystems),
            "outside_time_window": (time >= (-np.inf if first is None else first))
                                   & (time <= (np.inf if last is None else last)),
        }
        keep = np.logical_and.reduce(list(masks.values())) if len(table) else np.zeros(0, bool)
        excluded.update({reason: int((~mask).sum()) for reason, mask in masks.items() if (~mask).any()})
        return {name: values[keep] for name, values in columns.items()}, excluded

    def process(self, state: StateView, dependencies: Mapping[str, JSON]) -> JSON:
        import numpy as np

        folders = self._folders()
        z_value, z_range, z_description = self._redshift(dependencies)
        points, excluded = self._select(state)
        base = {"source": self.source, "source_version": self.source_version, "redshift": z_description,
                "mwebv": self.mwebv, "modelcov": self.modelcov, "excluded": excluded}

        npoints, nbands = len(points["time"]), len(set(points["band"]))
        reason = None
        if z_value is None and z_range is None:
            reason = f"no redshift in the result of {self.redshift.unit} (key '{self.redshift.key}')"  # type: ignore[union-attr]
        elif npoints < self.min_detections:
            reason = f"{npoints} points < min_detections {self.min_detections}"
        elif nbands < self.min_bands:
            reason = f"{nbands} bands < min_bands {self.min_bands}"
        if reason:
            return self._skipped(base, reason, points["band"], points["time"])

        # sncosmo objects instead of names: sncosmo's registry (which may download) is never asked
        bandpasses = {b: load_bandpass(b, folders).value for b in set(points["band"])}
        magsystems = {s: load_magsystem(s, folders).value for s in set(points["zpsys"])}
        data = {
            "time": points["time"],
            "band": np.array([bandpasses[b] for b in points["band"]], dtype=object),
            "flux": points["flux"], "fluxerr": points["flux_err"], "zp": points["zp"],
            "zpsys": np.array([magsystems[s] for s in points["zpsys"]], dtype=object),
        }
        return self._fit(state, data, points["band"], z_value, z_range, folders, base)

    def _fit(self, state: StateView, data: dict[str, Any], band_names: Any, z_value: float | None,
             z_range: Range | None, folders: SearchPath, base: dict[str, Any]) -> JSON:
        import numpy as np
        import sncosmo

        model = self._model(folders)
        vary = self._vary(model, fit_z=z_value is None)
        bounds = dict(self.bounds)
        if z_value is not None:
            model.set(z=z_value)
        elif z_range is not None:
            bounds["z"] = z_range
        try:
            # the minimizer probes extreme parameters (overflows); success and message report the outcome
            with np.errstate(all="ignore"):
                result, fitted = sncosmo.fit_lc(
                    data, model, vary, bounds=bounds, minsnr=self.minsnr, modelcov=self.modelcov,
                    phase_range=self.phase_range, maxcall=self.maxcall, warn=False)
        except (sncosmo.fitting.DataQualityError, RuntimeError) as error:  # e.g. no point above minsnr
            return self._skipped(base, f"fit failed: {error}", band_names, data["time"])

        used = np.asarray(result.data_mask, dtype=bool)
        dropped = int((~used).sum())
        if dropped:
            base["excluded"]["outside_model_or_phase_range"] = dropped
        z = float(fitted.get("z"))
        if z_value is None:
            base["redshift"]["value"] = z
        names = list(result.vparam_names)
        covariance = None
        if result.covariance is not None:
            covariance = {"names": names, "matrix": [[float(v) for v in row] for row in result.covariance]}
        body = {
            **base,
            "success": bool(result.success), "skipped": False, "message": str(result.message),
            "parameters": {n: float(v) for n, v in zip(result.param_names, result.parameters, strict=True)},
            "fit_parameters": names,
            "errors": {n: float(v) for n, v in result.errors.items()} if result.errors is not None else None,
            "covariance": covariance,
            "chi2": float(result.chisq), "ndof": int(result.ndof), "ncall": int(result.ncall),
            **self._points(band_names[used], data["time"][used]),
            "plot": None,
        }
        if self.plot_dir:
            body["plot"] = self._plot(state, {k: v[used] for k, v in data.items()}, fitted, result)
        return body

    @staticmethod
    def _points(band_names: Any, times: Any) -> dict[str, Any]:
        return {"npoints": len(times), "points_per_band": dict(sorted(Counter(map(str, band_names)).items())),
                "data_window": {"first": float(times.min()), "last": float(times.max())} if len(times) else None}

    def _skipped(self, base: dict[str, Any], reason: str, band_names: Any, times: Any) -> JSON:
        return {**base, "success": False, "skipped": True, "message": reason, "parameters": None,
                "fit_parameters": None, "errors": None, "covariance": None, "chi2": None, "ndof": None,
                "ncall": None, **self._points(band_names, times), "plot": None}

    def _plot(self, state: StateView, data: dict[str, Any], fitted: Any, result: Any) -> str:
        """Write data and fitted model as PNG; return its path."""
        import sncosmo

        path = Path(self.plot_dir) / f"{state.id}.png"  # type: ignore[arg-type]
        path.parent.mkdir(parents=True, exist_ok=True)
        sncosmo.plot_lc(data, model=fitted, errors=result.errors, fname=str(path), format="png",
                        figtext=f"{state.stock_name}  {self.source} {self.source_version}")
        return str(path)
