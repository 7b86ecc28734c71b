"""The Python API for notebooks: open a store, load light curves and results as astropy Tables,
plot a light curve.

    >>> from ampel_core import api
    >>> store = api.open_store("sqlite:///ampel.db")
    >>> api.light_curve(store, "ZTF21abiuvdk")          # astropy Table, standard photometry columns
    >>> api.results_table(store, "T2LightCurveSummary")  # one row per result, body fields flattened
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from ampel_core.compare import flatten
from ampel_core.errors import AmpelError, optional_import
from ampel_core.models import DataPoint
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


def results_table(store: Store, unit: str, latest_only: bool = True, channel: str | None = None,
                  trace: str | None = None) -> Table:
    """Successful results of ``unit``, one row each, with the columns result, stock, name,
    channels, link, trace, config, run and the flattened body fields (dotted: ``parameters.z``).

    A unit configured in two ways (T2SNCosmoFit with a fitted and with a fixed redshift) runs as
    two traces, and the rows keep them apart:

    - ``latest_only``: the newest result per stock *and trace* (False: every result);
    - ``trace``: only results of that trace (a full trace id or a prefix of one);
    - ``channel``: only results the channel asked for: by a trace the channel ran (a ``t2``
      journal entry of the channel with that trace, on any stock read), on a state the channel
      saw (for point and stock units: on a stock of the channel);
    - ``channels``: every channel the result belongs to in that sense, comma-separated;
    - ``config``: what sets the result's configuration apart from the other configurations of
      ``unit`` among the results read, as ``key=value`` pairs (``redshift.kind="fixed",
      redshift.value=0.0035``; the trace's distribution, version and code digest as
      ``trace.version`` etc. when they differ), or the whole configuration when there is only one.
    """
    from astropy.table import Table

    results = [(result_id, result) for result_id, result in store.results(unit=unit) if result.status == "ok"]
    stocks = sorted({result.stock for _, result in results})
    journals = {stock: store.journal(stock) for stock in stocks}
    channel_traces = {(entry.channel, entry.trace) for entries in journals.values() for entry in entries
                      if entry.tier == 2 and entry.channel and entry.trace}
    seen = {stock: _channel_links(store, stock) for stock in stocks}
    settings = _distinguishing_settings(store, sorted({result.trace for _, result in results}))
    rows: dict[Any, dict[str, Any]] = {}
    for result_id, result in results:
        channels = sorted(c for c, link in seen[result.stock]
                          if (c, result.trace) in channel_traces and (link == result.link or result.link_kind != "state"))
        if (trace and not result.trace.startswith(trace)) or (channel and channel not in channels):
            continue
        info = store.get_stock(result.stock)
        row = {"result": result_id, "stock": result.stock, "name": info.names[0] if info and info.names else "",
               "channels": ",".join(channels), "link": result.link, "trace": result.trace,
               "config": settings[result.trace], "run": result.run}
        row.update({k: v for k, v in flatten(result.body or {}).items() if not isinstance(v, (list, dict))})
        rows[(result.stock, result.trace) if latest_only else result_id] = row
    if not rows:
        return Table()
    names = list(dict.fromkeys(key for row in rows.values() for key in row))
    return Table(rows=[[row.get(name) for name in names] for row in rows.values()], names=names)


def _channel_links(store: Store, stock: int) -> set[tuple[str, str]]:
    """(channel, state id) of every state a channel saw of ``stock``, plus (channel, '') for every
    channel of the stock."""
    info = store.get_stock(stock)
    return ({(channel, state) for channel, state, _, _ in store.channel_states(stock)}
            | {(channel, "") for channel in (info.channels if info else ())})


def _distinguishing_settings(store: Store, traces: list[str]) -> dict[str, str]:
    """Per trace id: 'key=value, ...' of the settings in which its configuration differs from
    the others' (all of them when it is the only one)."""
    flat: dict[str, dict[str, Any]] = {}
    for trace_id in traces:
        found = store.get_trace(trace_id)
        document = {"config": found.config, "trace": {"distribution": found.distribution, "version": found.version,
                                                      "code": found.code, "resources": found.resources}} if found else {}
        flat[trace_id] = {key.removeprefix("config."): value for key, value in flatten(document).items()}
    keys = sorted({key for values in flat.values() for key in values})
    differing = [key for key in keys if len({json.dumps(values.get(key, "(unset)"), sort_keys=True)
                                            for values in flat.values()}) > 1]
    shown = differing if len(flat) > 1 else [key for key in keys if not key.startswith("trace.")]
    return {trace_id: ", ".join(f"{key}={json.dumps(values.get(key), default=str)}" for key in shown if key in values)
            or "(none)"
            for trace_id, values in flat.items()}


BAND_COLOURS = {"g": "tab:green", "r": "tab:red", "i": "tab:olive", "u": "tab:purple", "z": "tab:brown", "y": "tab:gray"}
LIMIT_SIGMA = 5.0  # upper limits are drawn at 5 x their 1-sigma noise flux (the surveys' limiting magnitudes are 5-sigma)


def plot_light_curve(store: Store, stock: int | str, width: float = 8.0, height: float = 5.0,
                     flux: bool = False) -> Figure:
    """The light curve of a stock per band, as a matplotlib Figure of ``width`` x ``height`` inches.

    In magnitudes (the default): detections with a positive difference flux as filled circles
    with error bars, forced photometry with a positive flux as open squares, upper limits as
    downward triangles at their limiting magnitude. A negative difference flux (ZTF ``isdiffpos``
    = ``f``, a negative Rubin flux: fainter than the reference image) has no magnitude: such
    points are not drawn, and a note on the axes says how many were left out.

    With ``flux=True``: every detection and forced point at its flux and error, all in one zero
    point (the stock's own when its datapoints share one, else 25), so that negative detections
    (open circles) and forced points lie below the dashed zero line; upper limits as downward
    triangles at 5 x their 1-sigma noise flux.

    The y axis names the magnitude system of the datapoints' ``zpsys`` (e.g. "magnitude (AB)",
    "flux (zp = 25 AB)"); the legend lists, per band, only what is drawn, with counts.
    """
    matplotlib = optional_import("matplotlib", "plot")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    stock_id = resolve_stock(store, stock)
    datapoints = sorted((dp for dp in store.stock_datapoints(stock_id) if dp.band), key=lambda dp: (dp.time, dp.id))
    info = store.get_stock(stock_id)
    figure = Figure(figsize=(width, height))
    axes = figure.add_subplot()
    zero_points = {dp.zp for dp in datapoints}
    zero_point = zero_points.pop() if len(zero_points) == 1 else 25.0
    systems = ", ".join(sorted({dp.zpsys.upper() for dp in datapoints})) or "AB"
    left_out = 0
    for band in sorted({dp.band for dp in datapoints}):
        colour = BAND_COLOURS.get(band[-1].lower())
        points = [dp for dp in datapoints if dp.band == band]
        series, limits, hidden = _flux_series(points, zero_point) if flux else _magnitude_series(points)
        left_out += hidden
        for kind, marker, filled, group, values, errors in series:
            if group:
                axes.errorbar([dp.time for dp in group], values, yerr=errors, fmt=marker, color=colour,
                              markerfacecolor=colour if filled else "none", markersize=4,
                              label=f"{band}{kind} ({len(group)})")
        if limits:
            axes.scatter([dp.time for dp, _ in limits], [value for _, value in limits], marker="v", color=colour,
                         alpha=0.4, s=16, label=f"{band} upper limits ({len(limits)})")
    if flux:
        axes.axhline(0.0, color="black", linestyle="--", linewidth=0.8)
        axes.set_ylabel(f"flux (zp = {zero_point:g} {systems})")
    else:
        axes.invert_yaxis()
        axes.set_ylabel(f"magnitude ({systems})")
        if left_out:
            axes.text(0.01, 0.01, f"{left_out} points with flux <= 0 (fainter than the reference) not drawn; "
                      "plot in flux to see them", transform=axes.transAxes, fontsize="small", color="dimgray")
    axes.set_xlabel("MJD")
    axes.set_title(info.names[0] if info and info.names else str(stock_id))
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


# (legend suffix, marker, filled, points, y values, y errors) of one errorbar series
Series = tuple[str, str, bool, list[DataPoint], list[float], list[float]]


def _magnitude_series(points: list[DataPoint]) -> tuple[list[Series], list[tuple[DataPoint, float]], int]:
    """One band in magnitudes: detections and forced points with a positive flux, upper limits at
    their limiting magnitude, and how many measurements were left out (flux <= 0: no magnitude)."""
    measured = [dp for dp in points if not dp.upper_limit and dp.flux is not None]
    shown = [dp for dp in measured if _positive(dp) and dp.mag is not None]
    series = [(kind, marker, filled, group, [_number(dp.mag) for dp in group], [_number(dp.mag_err) for dp in group])
              for kind, marker, filled, group in (("", "o", True, [dp for dp in shown if dp.is_detection]),
                                                  (" forced", "s", False, [dp for dp in shown if not dp.is_detection]))]
    limits = [(dp, dp.mag) for dp in points if dp.upper_limit and dp.mag is not None]
    return series, limits, len(measured) - len(shown)


def _flux_series(points: list[DataPoint], zero_point: float) -> tuple[list[Series], list[tuple[DataPoint, float]], int]:
    """One band in flux at ``zero_point``: positive and negative detections, forced points, and
    upper limits at 5 x their 1-sigma noise flux; nothing is left out."""
    def scaled(dp: DataPoint, value: float | None) -> float:
        return _number(value) * 10 ** (0.4 * (zero_point - dp.zp))

    measured = [dp for dp in points if not dp.upper_limit and dp.flux is not None]
    detections = [dp for dp in measured if dp.is_detection]
    groups = (("", "o", True, [dp for dp in detections if _positive(dp)]),
              (" negative", "o", False, [dp for dp in detections if not _positive(dp)]),
              (" forced", "s", False, [dp for dp in measured if not dp.is_detection]))
    series = [(kind, marker, filled, group, [scaled(dp, dp.flux) for dp in group], [scaled(dp, dp.flux_err) for dp in group])
              for kind, marker, filled, group in groups]
    limits = [(dp, LIMIT_SIGMA * scaled(dp, dp.flux_err)) for dp in points if dp.upper_limit and dp.flux_err is not None]
    return series, limits, 0


def _positive(dp: DataPoint) -> bool:
    """Whether a datapoint measured a positive difference flux (brighter than the reference)."""
    return dp.flux is not None and dp.flux > 0


def _number(value: float | None) -> float:
    return math.nan if value is None else value
