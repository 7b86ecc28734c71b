"""The plugin manager: discovers distributions with entry points in the group ``ampel``.

The core's own components are registered the same way (entry point ``core`` of ``ampel-core``),
so there is one code path for built-ins and plugins.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

import pluggy

from ampel_core import hookspecs
from ampel_core.errors import AmpelError

__all__ = ["CORE_DISTRIBUTION", "ENTRY_POINT_GROUP", "PluginError", "PluginInfo", "core_version", "discover",
           "get_manager", "new_manager", "register", "set_manager"]

ENTRY_POINT_GROUP = "ampel"
CORE_DISTRIBUTION = "ampel-core"


class PluginError(AmpelError):
    """A plugin could not be loaded or registered; the message names distribution and cause."""


@dataclass(frozen=True)
class PluginInfo:
    distribution: str
    version: str
    entry_point: str
    requires_core: str  # the distribution's requirement on ampel-core, e.g. ">=0.1,<0.2", or ""


def core_version() -> str:
    return metadata.version(CORE_DISTRIBUTION)


def _requires_core(dist: metadata.Distribution) -> str:
    from packaging.requirements import Requirement

    for line in dist.requires or ():
        requirement = Requirement(line)
        if requirement.name == CORE_DISTRIBUTION and not requirement.marker:
            return str(requirement.specifier)
    return ""


def new_manager() -> pluggy.PluginManager:
    """A plugin manager with the hook specifications and nothing registered."""
    manager = pluggy.PluginManager("ampel")
    manager.add_hookspecs(hookspecs)
    return manager


def register(manager: pluggy.PluginManager, module: object, name: str) -> None:
    """Register ``module`` under ``name``; a hook implementation that does not match its
    specification is a `PluginError` naming the plugin, the hook and the arguments."""
    try:
        manager.register(module, name=name)
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        if manager.has_plugin(name):
            manager.unregister(name=name)
        raise PluginError(f"plugin '{name}': {error}") from None


def discover(manager: pluggy.PluginManager, check_core: bool = True) -> list[PluginInfo]:
    """Load and register every entry point of the group ``ampel``; return what was loaded.

    Raises `PluginError` naming the distribution and entry point when one fails to import, has a
    hook that does not match its specification, or (with ``check_core``) requires a core range
    that excludes the installed ampel-core.
    """
    from packaging.specifiers import SpecifierSet

    core = core_version()
    loaded = []
    for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.value):
        dist = entry_point.dist
        dist_name = dist.name if dist else entry_point.name
        version = dist.version if dist else "unknown"
        requires = _requires_core(dist) if dist else ""
        if check_core and requires and not SpecifierSet(requires).contains(core, prereleases=True):
            raise PluginError(
                f"plugin {dist_name} {version} requires ampel-core{requires}, but ampel-core {core} "
                f"is installed: upgrade {dist_name} or install a matching ampel-core")
        if manager.has_plugin(dist_name):
            continue
        try:
            module = entry_point.load()
        except Exception as error:
            raise PluginError(f"plugin {dist_name} {version}: entry point '{entry_point.name} = "
                              f"{entry_point.value}' failed to load: {type(error).__name__}: {error}") from error
        register(manager, module, dist_name)
        loaded.append(PluginInfo(dist_name, version, f"{entry_point.name} = {entry_point.value}", requires))
    return loaded


_manager: pluggy.PluginManager | None = None


def get_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager with every installed plugin (discovered on first use)."""
    global _manager
    if _manager is None:
        manager = new_manager()
        discover(manager)
        _manager = manager
    return _manager


def set_manager(manager: pluggy.PluginManager | None) -> None:
    """Replace the process-wide manager (tests; `ampel_core.testing`)."""
    global _manager
    _manager = manager
