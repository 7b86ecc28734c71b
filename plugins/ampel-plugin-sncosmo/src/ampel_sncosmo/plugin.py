"""The plugin's hook implementations (entry point ``sncosmo`` in the group ``ampel``)."""

from ampel_core.hookspecs import hookimpl

__all__ = ["ampel_units"]


@hookimpl
def ampel_units() -> list[str]:
    return ["ampel_sncosmo.fit:T2SNCosmoFit"]
