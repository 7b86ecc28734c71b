"""Hook implementations of ampel-plugin-catalogs (imported by every ``ampel`` command: keep it light)."""

from ampel_core.hookspecs import hookimpl

__all__ = ["ampel_cli_commands", "ampel_units"]


@hookimpl
def ampel_units() -> list[str]:
    return ["ampel_catalogs.units:T2CatalogMatch", "ampel_catalogs.units:CatalogVetoFilter",
            "ampel_catalogs.hosts:T2HostGalaxy"]


@hookimpl
def ampel_cli_commands() -> dict[str, str]:
    return {"catalog": "ampel_catalogs._cli:catalog"}
