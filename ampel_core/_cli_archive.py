"""``ampel archive build|info``: alert archives partitioned by stock (`ampel_core.archive`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ampel_core.tables import Format, format_option, print_table


@click.group()
def archive() -> None:
    """Alert archives: Parquet partitioned by stock, for reprocessing on many workers."""


@archive.command("build")
@click.argument("sources", nargs=-1, required=True)
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "format_name", required=True,
              help="Alert format that decodes the sources (e.g. ztf, lsst, json; see `ampel plugins`).")
@click.option("--format-config", default="{}", metavar="JSON", help="The format's config as JSON.")
@click.option("--partitions", type=click.IntRange(min=1), default=16, show_default=True,
              help="Number of partitions (files); a job runs at most this many T0 tasks in parallel.")
def build(sources: tuple[str, ...], out: Path, format_name: str, format_config: str, partitions: int) -> None:
    """Read SOURCES (alert files, directories, tar archives, Kafka dumps, Parquet exports) and write
    the archive OUT (a new folder): every alert of a stock in one partition, in time order, with
    its original bytes. Undecodable records are kept in OUT/quarantine.parquet with their reason."""
    from ampel_core.archive import build_archive
    from ampel_core.errors import AmpelError
    from ampel_core.registry import get_registry
    from ampel_core.runtime import build_component

    try:
        config = json.loads(format_config)
    except ValueError as error:
        raise AmpelError(f"--format-config is not JSON: {error}") from None
    alert_format = build_component(get_registry(), "formats", format_name, config)
    info = build_archive(list(sources), out, alert_format, {"name": format_name, "config": config}, partitions)
    click.echo(f"archive {out}: {info.alerts} alerts of {info.stocks} stocks in {info.partitions} partitions, "
               f"{info.bytes} bytes; {info.quarantined} record(s) quarantined", err=True)


@archive.command("info")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@format_option
def info(path: Path, output_format: Format) -> None:
    """What an archive holds: format, sources, and per partition its alerts, stocks and bytes.
    Reads the manifest only; nothing is written."""
    from ampel_core.archive import read_info

    manifest = read_info(path)
    rows = [[entry["name"], entry["alerts"], entry["stocks"], entry["bytes"]] for entry in manifest.files]
    title = (f"archive {path}: format {manifest.format['name']}, {manifest.alerts} alerts of {manifest.stocks} "
             f"stocks, {manifest.partitions} partitions, {manifest.bytes} bytes, {manifest.quarantined} quarantined")
    print_table(title, ["partition", "alerts", "stocks", "bytes"], rows, output_format, key_columns=["partition"])
