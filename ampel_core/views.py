"""Read-only views that units receive: a state's light curve and a stock with its results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ampel_core.models import PHOTOMETRY_FIELDS, DataPoint

if TYPE_CHECKING:
    from astropy.table import Table

__all__ = ["ResultRef", "StateView", "StockView", "light_curve_table", "lookup"]


def light_curve_table(datapoints: tuple[DataPoint, ...] | list[DataPoint], upper_limits: bool = False) -> Table:
    """The datapoints as an astropy Table sorted by time, one column per standard photometry field
    (time [MJD], band, flux, flux_err, zp, zpsys, mag, mag_err, upper_limit) plus ``id`` — the form
    ``sncosmo.fit_lc`` takes. Forced photometry is included; records without a band are not; upper
    limits are left out unless ``upper_limits`` is True, and their ``flux`` is NaN. Missing
    magnitudes are NaN.
    """
    from astropy.table import Table

    rows = sorted((dp for dp in datapoints if dp.band and (upper_limits or not dp.upper_limit)),
                  key=lambda d: (d.time, d.id))
    nan = float("nan")
    columns: dict[str, list[Any]] = {"id": [dp.id for dp in rows]}
    for name in PHOTOMETRY_FIELDS:
        values = [getattr(dp, name) for dp in rows]
        if name not in ("band", "zpsys", "upper_limit"):
            values = [nan if v is None else float(v) for v in values]
        columns[name] = values
    dtypes = ["i8", "f8", "U16", "f8", "f8", "f8", "U8", "f8", "f8", "?"]
    table = Table(columns, names=["id", *PHOTOMETRY_FIELDS], dtype=dtypes)
    table["time"].unit = "d"
    return table


@dataclass(frozen=True)
class StateView:
    """A channel's state of a stock: its datapoints (upper limits included) and the light curve."""

    id: str
    stock: int
    stock_name: str
    channel: str
    datapoints: tuple[DataPoint, ...]

    @property
    def detections(self) -> tuple[DataPoint, ...]:
        """Datapoints that are detections (see `DataPoint.is_detection`)."""
        return tuple(dp for dp in self.datapoints if dp.is_detection)

    def table(self, upper_limits: bool = False) -> Table:
        """See `light_curve_table`."""
        return light_curve_table(self.datapoints, upper_limits)


@dataclass(frozen=True, slots=True)
class ResultRef:
    """Where a result in a `StockView` comes from: its result id and its unit's trace id (what
    ``ampel provenance RESULT`` takes), so a T3 report can cite every number it shows."""

    id: int
    trace: str


@dataclass(frozen=True)
class StockView:
    """A stock as a channel sees it: names, tags, datapoints, states and the latest T2 results.

    ``results`` maps unit name to the body of the newest successful result of that unit on the
    stock's latest state (or on the stock itself, for stock units); ``result_refs`` maps the same
    unit names to that result's id and trace.
    """

    id: int
    names: tuple[str, ...]
    channels: tuple[str, ...]
    tags: tuple[str, ...]
    datapoints: tuple[DataPoint, ...]
    latest_state: str | None = None
    results: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    channel: str | None = None
    result_refs: Mapping[str, ResultRef] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.names[0] if self.names else str(self.id)

    def table(self, upper_limits: bool = False) -> Table:
        """See `light_curve_table`."""
        return light_curve_table(self.datapoints, upper_limits)


def lookup(view: StockView, path: str) -> Any:
    """A value of a stock view by dotted path: 'name', 'id', 'tags', 'channels', or
    '<Unit>.<key>[.<key>…]' into the latest results; None where absent."""
    value: Any
    if path in ("name", "id", "tags", "channels", "latest_state"):
        value = getattr(view, path)
        return ",".join(value) if isinstance(value, tuple) else value
    unit, _, rest = path.partition(".")
    value = view.results.get(unit)
    for key in rest.split(".") if rest else ():
        value = value.get(key) if isinstance(value, dict) else None
    return value
