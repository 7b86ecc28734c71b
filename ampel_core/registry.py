"""What the installed plugins provide, and the generated config (``ampel config build``).

The registry asks every plugin's hooks for import paths; nothing is imported until it is used.
`build_config` imports every unit once to record its tier, code digest and config schema, and
`check_config` compares a built config with what is installed now.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pluggy

if TYPE_CHECKING:
    from ampel_core.units import Unit

from ampel_core.errors import AmpelError
from ampel_core.plugins import _requires_core, core_version, get_manager

__all__ = ["Component", "Registry", "RegistryError", "build_config", "check_config", "dump_yaml", "get_registry",
           "import_object", "load_config", "require_current_config", "unit_entry", "write_atomically"]


class RegistryError(AmpelError):
    """Installed plugins conflict, or a component cannot be found or imported."""


def import_object(path: str) -> Any:
    """Import ``"package.module:Name"``."""
    module, _, name = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split(".") if name else ():
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Component:
    """A named thing a plugin provides: a unit, alert format, source, store or command."""

    name: str
    import_path: str
    distribution: str
    version: str

    def load(self) -> Any:
        try:
            return import_object(self.import_path)
        except Exception as error:
            raise RegistryError(f"plugin {self.distribution} {self.version}: '{self.name}' "
                                f"({self.import_path}) failed to import: {type(error).__name__}: {error}") from error


def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "0+local"  # registered in-process (tests, notebooks)


@dataclass
class Registry:
    """Everything the plugins of one plugin manager provide, attributed to its distribution."""

    manager: pluggy.PluginManager
    units: dict[str, Component] = field(default_factory=dict)
    formats: dict[str, Component] = field(default_factory=dict)
    sources: dict[str, Component] = field(default_factory=dict)
    stores: dict[str, Component] = field(default_factory=dict)
    commands: dict[str, Component] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    _classes: dict[str, type[Unit]] = field(default_factory=dict, repr=False)

    @classmethod
    def collect(cls, manager: pluggy.PluginManager) -> Registry:
        registry = cls(manager)
        kinds = {"ampel_units": registry.units, "ampel_alert_formats": registry.formats,
                 "ampel_alert_sources": registry.sources, "ampel_stores": registry.stores,
                 "ampel_cli_commands": registry.commands}
        for hook_name, target in kinds.items():
            for impl in getattr(manager.hook, hook_name).get_hookimpls():
                provided = impl.function()
                if isinstance(provided, list):  # units: names are the class names
                    provided = {path.rpartition(":")[2].rpartition(".")[2]: path for path in provided}
                for name, path in (provided or {}).items():
                    registry._add(target, hook_name, name, path, impl.plugin_name)
        owners: dict[tuple[str, str], str] = {}
        for impl in manager.hook.ampel_config_fragments.get_hookimpls():
            fragment = cast(dict[str, Any], impl.function() or {})
            unknown = set(fragment) - {"channels", "aliases"}
            if unknown:
                raise RegistryError(f"{impl.plugin_name}: ampel_config_fragments returned {sorted(unknown)}; "
                                    "a fragment has only 'channels' and 'aliases'")
            for kind in ("channels", "aliases"):
                contributed: dict[str, Any] = getattr(registry, kind)
                for name, value in fragment.get(kind, {}).items():
                    other = owners.setdefault((kind, name), impl.plugin_name)
                    if name in contributed and contributed[name] != value:
                        raise RegistryError(f"{'channel' if kind == 'channels' else 'alias'} '{name}' from {other} and {impl.plugin_name} differ: two "
                                            f"{kind} with one name; rename one or uninstall one")
                    contributed[name] = value
        return registry

    def _add(self, target: dict[str, Component], hook: str, name: str, path: str, dist: str) -> None:
        version = self.versions.get(dist) or _distribution_version(dist)
        self.versions[dist] = version
        if name in target and target[name].distribution != dist:
            other = target[name]
            what = "units" if hook == "ampel_units" else hook.removeprefix("ampel_").replace("_", " ")
            raise RegistryError(
                f"'{name}' from {other.distribution} {other.version} and {dist} {version}: two {what} "
                f"with one name; rename one or uninstall one")
        target[name] = Component(name, path, dist, version)

    def unit_class(self, name: str) -> type[Unit]:
        """The class of unit ``name``; RegistryError names the unit, plugin and import error."""
        if name not in self._classes:
            if name not in self.units:
                raise RegistryError(f"unknown unit '{name}'; installed units: {', '.join(sorted(self.units)) or 'none'}"
                                    " (is its plugin installed? `ampel units` lists them)")
            self._classes[name] = self.units[name].load()
        return self._classes[name]

    def component(self, kind: str, name: str) -> Any:
        """Load the alert format / source / store ``name`` (kind: 'formats', 'sources', 'stores')."""
        table: dict[str, Component] = getattr(self, kind)
        if name not in table:
            raise RegistryError(f"unknown {kind[:-1]} '{name}'; installed: {', '.join(sorted(table)) or 'none'}")
        return table[name].load()

    def plugins(self) -> Iterator[tuple[str, str, str]]:
        """(distribution, version, required core range) of every registered plugin."""
        for name, _ in sorted(self.manager.list_name_plugin()):
            try:
                dist = metadata.distribution(name)
                yield name, dist.version, _requires_core(dist)
            except metadata.PackageNotFoundError:
                yield name, "0+local", ""


def get_registry(manager: pluggy.PluginManager | None = None) -> Registry:
    """The registry of ``manager`` (the process-wide one by default), collected once."""
    manager = manager or get_manager()
    registry: Registry | None = getattr(manager, "_ampel_registry", None)
    if registry is None:
        registry = Registry.collect(manager)
        manager._ampel_registry = registry  # type: ignore[attr-defined]
    return registry


def unit_entry(registry: Registry, name: str) -> dict[str, Any]:
    """The config entry of one unit: imports it (RegistryError when that fails)."""
    from ampel_core.provenance import code_digest
    from ampel_core.units import config_schema, unit_kind

    component = registry.units[name]
    cls = registry.unit_class(name)
    try:
        kind = unit_kind(cls)
    except TypeError as error:
        raise RegistryError(f"plugin {component.distribution}: '{name}' ({component.import_path}): {error}") from None
    return {"tier": cls.tier, "kind": kind, "import_path": component.import_path,
            "distribution": component.distribution, "version": component.version,
            "code_digest": code_digest(cls), "config_schema": config_schema(cls)}


def build_config(registry: Registry, skip_broken: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The config document for everything installed, and the units skipped as broken.

    Raises RegistryError on the first broken unit unless ``skip_broken``.
    """
    units, skipped = {}, []
    for name in sorted(registry.units):
        try:
            units[name] = unit_entry(registry, name)
        except RegistryError as error:
            if not skip_broken:
                raise
            skipped.append(str(error))

    def components(table: dict[str, Component]) -> dict[str, Any]:
        return {name: {"import_path": c.import_path, "distribution": c.distribution, "version": c.version}
                for name, c in sorted(table.items())}

    config = {
        "ampel_core": {"version": core_version()},
        "plugins": {name: {"version": version, "requires_core": requires}
                    for name, version, requires in registry.plugins()},
        "units": units,
        "alert_formats": components(registry.formats),
        "alert_sources": components(registry.sources),
        "stores": components(registry.stores),
        "channels": registry.channels,
        "aliases": registry.aliases,
    }
    return config, skipped


def dump_yaml(document: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False, width=100, allow_unicode=True)


def write_atomically(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def check_config(built: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What changed between a built config and the current installation (empty: up to date)."""
    changes = []
    if built.get("ampel_core", {}).get("version") != current["ampel_core"]["version"]:
        changes.append(f"ampel-core: {built.get('ampel_core', {}).get('version')} -> {current['ampel_core']['version']}")
    old_plugins, new_plugins = built.get("plugins", {}), current["plugins"]
    for name in sorted(old_plugins.keys() | new_plugins.keys()):
        old, new = old_plugins.get(name), new_plugins.get(name)
        if old is None:
            changes.append(f"plugin {name} {new['version']}: installed since the build")
        elif new is None:
            changes.append(f"plugin {name} {old['version']}: no longer installed")
        elif old["version"] != new["version"]:
            changes.append(f"plugin {name}: version {old['version']} -> {new['version']}")
    old_units, new_units = built.get("units", {}), current["units"]
    for name in sorted(old_units.keys() | new_units.keys()):
        old, new = old_units.get(name), new_units.get(name)
        if old is None:
            changes.append(f"unit {name} ({new['distribution']}): added")
        elif new is None:
            changes.append(f"unit {name} ({old['distribution']}): removed")
        elif old["code_digest"] != new["code_digest"]:
            changes.append(f"unit {name} ({new['distribution']}): code changed")
        elif old["config_schema"] != new["config_schema"]:
            changes.append(f"unit {name} ({new['distribution']}): config schema changed")
    return changes



def load_config(path: str | Path) -> dict[str, Any]:
    """Read a built config; AmpelError when it is missing or not a config."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise AmpelError(f"no config at {path}: build one with `ampel config build -o {path}`")
    try:
        document = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise AmpelError(f"{path} is not an AMPEL config (not YAML: {str(error).splitlines()[0]}); rebuild it with "
                         "`ampel config build`") from None
    if not isinstance(document, dict) or "units" not in document:
        raise AmpelError(f"{path} is not an AMPEL config (no 'units'); rebuild it with `ampel config build`")
    return document


def require_current_config(path: str | Path, registry: Registry | None = None) -> None:
    """Refuse to run against a stale built config: AmpelError naming what changed and how to rebuild."""
    from ampel_core.errors import AmpelError

    changes = check_config(load_config(path), build_config(registry or get_registry(), skip_broken=True)[0])
    if changes:
        raise AmpelError(f"the config {path} is stale ({'; '.join(changes)}); rebuild it with "
                         f"`ampel config build -o {path}` or run without --config")
