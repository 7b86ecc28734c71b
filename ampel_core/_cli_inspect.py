"""Inspection commands: ``ampel runs``, ``ampel stock show|plot``, ``ampel provenance``,
``ampel replay``, ``ampel diff``."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from ampel_core.tables import Format, format_option, print_table

STORE = click.option("--store", "store_url", default=lambda: os.environ.get("AMPEL_STORE", "sqlite:///ampel.db"),
                     show_default="$AMPEL_STORE or sqlite:///ampel.db", help="Store URL.")


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp)) if timestamp else "-"


@click.command()
@STORE
@format_option
def runs(store_url: str, output_format: Format) -> None:
    """List recorded runs: id, status (ok, incomplete, interrupted, killed, failed, stopped,
    running), start (UTC), wall time, alerts, tickets, quarantined records, job name and digest (in
    full), and what went wrong. Nothing is written (a run whose process is gone shows 'killed')."""
    from ampel_core.store import open_store

    from ampel_core.runtime import run_status

    store = open_store(store_url, read_only=True)
    rows = [[r.id, run_status(r), _when(r.started), f"{(r.ended or r.started) - r.started:.1f}s", r.summary.get("alerts", "-"),
             f"{r.summary.get('tickets_done', 0)}/{r.summary.get('tickets_failed', 0)}", r.summary.get("quarantined", "-"),
             r.job.get("name", r.job.get("worker", "?")), r.job_digest, _why(r)] for r in store.runs()]
    print_table(f"runs in {store_url}", ["run", "status", "started", "wall", "alerts", "t2 ok/failed", "quarantined",
                                         "job", "job digest", "error"],
                rows, output_format, key_columns=["job", "job digest"])


def _why(run: Any) -> str:
    """What went wrong in a run, in a line: its error, or why it is incomplete or was killed."""
    if run.summary.get("error"):
        return str(run.summary["error"])
    if run.status == "incomplete":
        return f"{run.summary.get('unreadable', '?')} source record(s) unreadable: see `ampel quarantine list --run {run.id}`"
    if run.status == "running":
        from ampel_core.runtime import run_status

        if run_status(run) == "killed":
            return "its process is gone: killed (the next run on this store records it)"
    return ""


@click.group()
def stock() -> None:
    """Show or plot one stock (by survey name or stock id)."""


@stock.command("show")
@click.argument("name")
@STORE
@format_option
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
def stock_show(name: str, store_url: str, output_format: Format, as_json: bool) -> None:
    """Datapoints, states per channel, T2 results and the journal of a stock.

    --format table prints four tables (result bodies and journal details shortened to a line);
    csv prints the same four tables in full, each after a line '# <title>' and separated by a blank
    line; json prints one object with everything."""
    from ampel_core.api import resolve_stock
    from ampel_core.store import open_store

    store = open_store(store_url, read_only=True)
    stock_id = resolve_stock(store, name)
    info = store.get_stock(stock_id)
    datapoints = sorted(store.stock_datapoints(stock_id), key=lambda d: (d.time, d.id))
    states = store.channel_states(stock_id)
    results = store.results(stock=stock_id)
    journal = store.journal(stock_id)
    if as_json or output_format == "json":
        from dataclasses import asdict

        click.echo(json.dumps({"stock": asdict(info) if info else None, "datapoints": [asdict(d) for d in datapoints],
                               "states": states, "results": [{"id": i, **asdict(r)} for i, r in results],
                               "journal": [asdict(j) for j in journal]}, indent=2, default=str))
        return

    def shorten(value: Any, length: int) -> str:
        text = json.dumps(value, default=str)
        return text if output_format == "csv" or len(text) <= length else text[: length - 1] + "…"

    tables: list[tuple[str, list[str], list[list[Any]]]] = [
        (f"{len(datapoints)} datapoints", ["id", "MJD", "band", "mag", "mag_err", "flux", "flux_err", "limit", "tags"],
         [[d.id, d.time, d.band, d.mag, d.mag_err, d.flux, d.flux_err, "yes" if d.upper_limit else "", ",".join(d.tags)]
          for d in datapoints]),
        (f"{len(states)} channel states", ["channel", "state", "alert", "time"], [[c, s, a, _when(t)] for c, s, a, t in states]),
        (f"{len(results)} T2 results", ["result", "unit", "status", "link", "trace", "run", "body"],
         [[i, r.unit, r.status, f"{r.link_kind}:{r.link}", r.trace, r.run, shorten(r.body, 100)] for i, r in results]),
        (f"{len(journal)} journal entries", ["time", "tier", "action", "channel", "run", "detail"],
         [[_when(j.time), j.tier, j.action, j.channel, j.run, shorten(j.detail, 80)] for j in journal]),
    ]
    if output_format == "table":
        click.echo(f"{', '.join(info.names) if info else name} (stock {stock_id}); channels: "
                   f"{', '.join(info.channels) if info else '-'}; tags: {', '.join(info.tags) if info and info.tags else '-'}")
    for number, (title, columns, rows) in enumerate(tables):
        if output_format == "csv":
            click.echo(("\n" if number else "") + f"# {title}")
        print_table(title, columns, rows, output_format, key_columns=["id", "channel", "unit"])


@stock.command("plot")
@click.argument("name")
@STORE
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("lc.png"), show_default=True,
              help="PNG file to write.")
@click.option("--dpi", default=100, show_default=True, type=click.IntRange(10, 1200),
              help="Pixels per inch (the figure is 8 x 5 inches).")
@click.option("--flux", is_flag=True, help="Plot flux instead of magnitude (shows negative subtractions).")
def stock_plot(name: str, store_url: str, output: Path, dpi: int, flux: bool) -> None:
    """Plot the light curve of a stock to a PNG (8 x 5 inches): detections per band with errors,
    forced photometry as open squares, upper limits as triangles. In magnitudes, points with a
    negative difference flux (fainter than the reference image) are left out and counted in a
    note; with --flux they are drawn as open circles below zero."""
    from ampel_core.api import plot_light_curve
    from ampel_core.store import open_store

    figure = plot_light_curve(open_store(store_url, read_only=True), name, flux=flux)
    figure.savefig(output, dpi=dpi)
    click.echo(f"wrote {output}", err=True)


@click.command()
@click.argument("identifier")
@STORE
@click.option("--prov-json", type=click.Path(dir_okay=False, path_type=Path), help="Also write W3C PROV-JSON here.")
def provenance(identifier: str, store_url: str, prov_json: Path | None) -> None:
    """Trace IDENTIFIER back to its origins: result (a number or result:N) <- unit trace (distribution,
    version, code digest, resources, config) <- state (64 hex digits or state:ID) <- datapoints
    (datapoint:STOCK:N) <- alerts (origin) <- runs (job digest, environment)."""
    from ampel_core.provenance_report import provenance_chain, to_prov_document
    from ampel_core.store import open_store

    store = open_store(store_url, read_only=True)
    chain = provenance_chain(store, identifier)
    click.echo(json.dumps(chain, indent=2, default=str))
    if prov_json:
        prov_json.write_text(to_prov_document(chain).serialize(format="json", indent=2))
        click.echo(f"wrote {prov_json}", err=True)


def _print_comparison(comparison: Any, label_first: str, label_second: str, limit: int = 20) -> None:
    click.echo(f"identical: {comparison.identical}; different: {len(comparison.different)}; "
               f"only in {label_first}: {len(comparison.only_first)}; only in {label_second}: {len(comparison.only_second)}")
    for key, changes in comparison.different[:limit]:
        click.echo(f"  {' '.join(key)}:")
        for field, (a, b) in list(changes.items())[:8]:
            click.echo(f"    {field}: {a!r} -> {b!r}")
    for key in comparison.only_first[:limit]:
        click.echo(f"  only in {label_first}: {' '.join(key)}")
    for key in comparison.only_second[:limit]:
        click.echo(f"  only in {label_second}: {' '.join(key)}")


@click.command()
@click.argument("run", type=click.IntRange(1, 2**63 - 1))
@STORE
@click.option("--scratch", "scratch_url", help="Store URL for the replay, kept (default: a temporary SQLite file, deleted afterwards).")
def replay(run: int, store_url: str, scratch_url: str | None) -> None:
    """Re-run recorded run RUN (its T0 and T2 tasks) into a scratch store and report whether every
    result is identical. Exit 1 when any differs."""
    from ampel_core.compare import replay as do_replay

    replay_run, comparison = do_replay(store_url, run, scratch_url)
    _print_comparison(comparison, f"run {run}", f"replay run {replay_run}")
    click.echo("replay: IDENTICAL" if comparison.same else "replay: DIFFERENT")
    sys.exit(0 if comparison.same else 1)


@click.command()
@click.argument("first", type=click.IntRange(1, 2**63 - 1))
@click.argument("second", type=click.IntRange(1, 2**63 - 1))
@STORE
@click.option("--rel-tol", default=0.0, show_default=True, help="Relative tolerance for numbers.")
@click.option("--second-store", "second_store_url", help="Store of run SECOND, when it is not --store.")
def diff(first: int, second: int, store_url: str, rel_tol: float, second_store_url: str | None) -> None:
    """Compare the results of runs FIRST and SECOND (newest result per unit and stock)."""
    from ampel_core.compare import diff as do_diff

    _print_comparison(do_diff(store_url, first, second, rel_tol, second_store_url), f"run {first}", f"run {second}")
