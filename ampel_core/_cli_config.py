"""``ampel config``, ``ampel plugins``, ``ampel units`` and ``ampel unit``: what is installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ampel_core.errors import AmpelError
from ampel_core.tables import Format, format_option, print_table


@click.group()
def config() -> None:
    """Build or check the generated config."""


@config.command("build")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("ampel_conf.yaml"),
              show_default=True, help="Where to write the config ('-' for standard output).")
@click.option("--skip-broken", is_flag=True, help="Leave out units that fail to import, and list them.")
def config_build(output: Path, skip_broken: bool) -> None:
    """Discover installed plugins and write a deterministic config.

    Refuses (exit 2, no file written) on units of one name from two distributions, a plugin whose
    core range excludes this core, a hook that does not match its spec, and a unit that fails to
    import (unless --skip-broken).
    """
    from ampel_core.registry import build_config, dump_yaml, get_registry, write_atomically

    document, skipped = build_config(get_registry(), skip_broken=skip_broken)
    text = dump_yaml(document)
    if str(output) == "-":
        sys.stdout.write(text)
    else:
        write_atomically(output, text)
        click.echo(f"wrote {output}: {len(document['plugins'])} plugins, {len(document['units'])} units", err=True)
    for problem in skipped:
        click.echo(f"skipped: {problem}", err=True)


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default=Path("ampel_conf.yaml"))
def config_check(path: Path) -> None:
    """Say whether the built config at PATH matches what is installed (exit 1 when stale)."""
    from ampel_core.registry import build_config, check_config, get_registry, load_config

    changes = check_config(load_config(path), build_config(get_registry(), skip_broken=True)[0])
    if not changes:
        click.echo(f"{path} is up to date")
        return
    click.echo(f"{path} is stale; rebuild it with `ampel config build -o {path}`:")
    for change in changes:
        click.echo(f"  {change}")
    sys.exit(1)


@click.command()
@click.option("--requirements", is_flag=True, help="Print pip requirement lines (name==version) instead of a table.")
@format_option
def plugins(requirements: bool, output_format: Format) -> None:
    """List installed plugins with their versions and the core range they require."""
    from ampel_core.registry import get_registry

    found = list(get_registry().plugins())
    if requirements:
        for name, version, _ in found:
            click.echo(f"{name}=={version}")
        return
    print_table(f"{len(found)} plugins", ["distribution", "version", "requires ampel-core"],
                [[name, version, requires or "(any)"] for name, version, requires in found], output_format,
                key_columns=["distribution", "version"])


@click.command()
@click.option("--tier", type=click.IntRange(0, 3), help="Only units of this tier.")
@format_option
def units(tier: int | None, output_format: Format) -> None:
    """List installed units: tier, kind, name, distribution and version."""
    from ampel_core.registry import get_registry

    registry = get_registry()
    rows = []
    for name, component in sorted(registry.units.items()):
        cls = registry.unit_class(name)
        if tier is None or cls.tier == tier:
            rows.append([f"T{cls.tier}", cls.kind, name, component.distribution, component.version])
    print_table(f"{len(rows)} units", ["tier", "kind", "unit", "distribution", "version"], rows, output_format,
                key_columns=["unit", "distribution"])


@click.group()
def unit() -> None:
    """Show or check one unit."""


@unit.command("show")
@click.argument("name")
def unit_show(name: str) -> None:
    """Show a unit: tier, origin, docstring and its config fields with defaults and docs."""
    import inspect

    from ampel_core.registry import get_registry, unit_entry

    registry = get_registry()
    if name not in registry.units:
        raise AmpelError(f"unknown unit '{name}'; `ampel units` lists the installed ones")
    entry = unit_entry(registry, name)
    cls = registry.unit_class(name)
    click.echo(f"{name}  (T{entry['tier']} {entry['kind']}; {entry['distribution']} {entry['version']})")
    click.echo(f"import path: {entry['import_path']}\ncode digest: {entry['code_digest']}\n")
    click.echo((inspect.getdoc(cls) or "(no docstring)") + "\n")
    schema = entry["config_schema"]
    fields = schema.get("properties", {})
    click.echo("config:" if fields else "config: (none)")
    for field_name, field in fields.items():
        info = cls.model_fields.get(field_name)
        if "default" in field:
            default = json.dumps(field["default"])
        elif info is not None and not info.is_required():
            default = json.dumps(info.get_default(call_default_factory=True), default=str)
        else:
            default = "(required)"
        kind = field.get("type") or " | ".join(t.get("type", "?") for t in field.get("anyOf", [])) or "object"
        click.echo(f"  {field_name}: {kind} = {default}")
        if field.get("description"):
            click.echo(f"      {field['description']}")


@unit.command("check")
@click.argument("name")
@click.option("--alerts", "alert_paths", required=True, multiple=True,
              type=click.Path(exists=True, path_type=Path),
              help="Alert file, directory or tar archive (repeat for several).")
@click.option("--format", "format_name", default="json", show_default=True,
              help="Alert format of the files (json, or one a plugin adds, e.g. ztf).")
@click.option("--pattern", default="*", show_default=True,
              help="File names to read inside directories and archives (fnmatch), e.g. '*.avro'.")
@click.option("--config", "config_json", metavar="JSON", help="The unit's config as a JSON object.")
@click.option("--limit", type=click.IntRange(min=1), help="Use at most this many alerts.")
@click.option("--no-edge-cases", is_flag=True, help="Only the sample's own inputs, no derived odd inputs.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def unit_check(name: str, alert_paths: tuple[Path, ...], format_name: str, pattern: str, config_json: str | None,
               limit: int | None, no_edge_cases: bool, as_json: bool) -> None:
    """Run unit NAME over sample alerts as the runtime would; report exceptions, invalid,
    non-JSON-able or NaN/inf outputs, and the time per call (p50/p95).

    Exit 0 when no problem was found, 1 when one was, 2 when the check could not run (unknown
    unit, invalid config, unreadable alerts). Anything the unit prints goes to standard error.
    """
    import contextlib

    from ampel_core.registry import get_registry
    from ampel_core.unit_check import check_unit, read_alerts

    try:
        config = json.loads(config_json) if config_json else {}
    except json.JSONDecodeError as error:
        raise AmpelError(f"--config is not valid JSON ({error}); e.g. --config '{{\"min_detections\": 2}}'") from None
    if not isinstance(config, dict):
        raise AmpelError("--config must be a JSON object, e.g. --config '{\"min_detections\": 2}'")
    registry = get_registry()
    alerts = read_alerts(list(alert_paths), format_name, limit=limit, registry=registry, pattern=pattern)
    with contextlib.redirect_stdout(sys.stderr):
        report = check_unit(name, alerts, config, registry, edge_cases=not no_edge_cases)
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.format())
    sys.exit(0 if report.ok else 1)
