"""The Python API for notebooks: open a store, load light curves and results as astropy Tables,
plot a light curve.

    >>> from ampel_core import api
    >>> store = api.open_store("sqlite:///ampel.db")
    >>> api.light_curve(store, "ZTF21abiuvdk")          # astropy Table, standard photometry columns
    >>> api.results_table(store, "T2LightCurveSummary")  # one row per result, body fields flattened
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ampel_core.compare import flatten
from ampel_core.errors import AmpelError, optional_import
from ampel_core.store import Store, open_store
from ampel_core.views import light_curve_table

if TYPE_CHECKING:
    from astropy.table import Table
    from matplotlib.figure import Figure

__all__ = ["flatten", "light_curve", "open_store", "plot_light_curve", "resolve_stock", "results_table"]


def resolve_stock(store: Store, stock: int | str) -> int:
    """A stock id from an id or a survey name; AmpelError when the store does not have it."""
    found = store.find_stock(str(stock))
    if found is None:
        raise AmpelError(f"no stock {stock!r} in {store.url}")
    return found


def light_curve(store: Store, stock: int | str, upper_limits: bool = True, tags: list[str] | None = None) -> Table:
    """All stored datapoints of a stock (optionally only those with one of ``tags``) as a Table
    sorted by time; see `ampel_core.views.light_curve_table` for the columns."""
    datapoints = store.stock_datapoints(resolve_stock(store, stock))
    if tags:
        datapoints = [dp for dp in datapoints if set(tags) & set(dp.tags)]
    return light_curve_table(datapoints, upper_limits)


def results_table(store: Store, unit: str, latest_only: bool = True) -> Table:
    """Successful results of ``unit``, one row each (the newest per stock when ``latest_only``),
    with columns stock, name, link, trace, run and the flattened body fields."""
    from astropy.table import Table

    rows: dict[Any, dict[str, Any]] = {}
    for result_id, result in store.results(unit=unit):
        if result.status != "ok":
            continue
        stock = store.get_stock(result.stock)
        row = {"result": result_id, "stock": result.stock, "name": stock.names[0] if stock and stock.names else "",
               "link": result.link, "trace": result.trace, "run": result.run}
        row.update({k: v for k, v in flatten(result.body or {}).items() if not isinstance(v, (list, dict))})
        rows[result.stock if latest_only else result_id] = row
    if not rows:
        return Table()
    names = list(dict.fromkeys(key for row in rows.values() for key in row))
    return Table(rows=[[row.get(name) for name in names] for row in rows.values()], names=names)


BAND_COLOURS = {"g": "tab:green", "r": "tab:red", "i": "tab:olive", "u": "tab:purple", "z": "tab:brown", "y": "tab:gray"}


def plot_light_curve(store: Store, stock: int | str, width: float = 8.0, height: float = 5.0) -> Figure:
    """Magnitude light curve per band: detections with error bars, upper limits as downward
    triangles. Returns a matplotlib Figure of ``width`` x ``height`` inches."""
    matplotlib = optional_import("matplotlib", "plot")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    stock_id = resolve_stock(store, stock)
    table = light_curve(store, stock_id)
    info = store.get_stock(stock_id)
    figure = Figure(figsize=(width, height))
    axes = figure.add_subplot()
    for band in sorted(set(table["band"])):
        rows = table[table["band"] == band]
        colour = BAND_COLOURS.get(band[-1].lower())
        detections = rows[~rows["upper_limit"]]
        limits = rows[rows["upper_limit"]]
        axes.errorbar(detections["time"], detections["mag"], yerr=detections["mag_err"], fmt="o", color=colour,
                      label=f"{band} ({len(detections)})", markersize=4)
        if len(limits):
            axes.scatter(limits["time"], limits["mag"], marker="v", color=colour, alpha=0.4, s=16,
                         label=f"{band} upper limits ({len(limits)})")
    axes.invert_yaxis()
    axes.set_xlabel("MJD")
    axes.set_ylabel("magnitude")
    axes.set_title(info.names[0] if info and info.names else str(stock_id))
    axes.legend(fontsize="small")
    figure.tight_layout()
    return figure
