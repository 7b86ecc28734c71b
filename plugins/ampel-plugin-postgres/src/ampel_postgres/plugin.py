"""Hook implementations of ampel-plugin-postgres (imported by every ``ampel`` command: keep it light)."""

from ampel_core.hookspecs import hookimpl

__all__ = ["ampel_stores"]


@hookimpl
def ampel_stores() -> dict[str, str]:
    return {"postgresql": "ampel_postgres.store:open_store", "postgres": "ampel_postgres.store:open_store"}
