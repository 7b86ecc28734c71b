"""``ampel quarantine list|show``: the records that could not be decoded or read whole."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ampel_core._cli_inspect import STORE
from ampel_core.tables import Format, format_option, print_table


@click.group()
def quarantine() -> None:
    """Records that could not be decoded or read whole: why, where from, their bytes."""


@quarantine.command("list")
@STORE
@click.option("--run", type=click.IntRange(1, 2**63 - 1), help="Only the records quarantined by this run.")
@format_option
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
def quarantine_list(store_url: str, run: int | None, output_format: Format, as_json: bool) -> None:
    """Every quarantined record: id, run, origin (file, archive member, container record as
    FILE#INDEX), size in bytes and reason. Nothing is written."""
    from ampel_core.store import open_store

    store = open_store(store_url, read_only=True)
    records = store.quarantined(run)
    store.close()
    rows = [[q.id if as_json or output_format != "table" else q.id[:12], q.run, q.origin, len(q.payload), q.reason]
            for q in records]
    print_table(f"quarantine of {store_url}" + (f", run {run}" if run else ""),
                ["id", "run", "origin", "bytes", "reason"], rows, "json" if as_json else output_format,
                key_columns=["id", "origin"])


@quarantine.command("show")
@click.argument("record")
@STORE
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the record's bytes here.")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
def quarantine_show(record: str, store_url: str, output: Path | None, as_json: bool) -> None:
    """One quarantined RECORD (its id, or the start of it, as `list` shows it): origin, run, size
    and the whole reason; --output writes its bytes, to inspect or decode again."""
    from ampel_core.errors import AmpelError
    from ampel_core.store import open_store

    store = open_store(store_url, read_only=True)
    found = [q for q in store.quarantined() if q.id.startswith(record.lower())] if record else []
    store.close()
    if len(found) != 1:
        what = "no quarantined record" if not found else f"{len(found)} quarantined records"
        raise AmpelError(f"{what} with id {record!r} in {store_url}; `ampel quarantine list` shows the ids")
    [entry] = found
    if output:
        output.write_bytes(entry.payload)
        click.echo(f"wrote {len(entry.payload)} bytes to {output}", err=True)
    document = {"id": entry.id, "run": entry.run, "origin": entry.origin, "bytes": len(entry.payload),
                "reason": entry.reason}
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo("\n".join(f"{key}: {value}" for key, value in document.items()))
