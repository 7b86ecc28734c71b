"""Hook implementations of ampel-plugin-classifiers (imported by every ``ampel`` command: keep it light)."""

from ampel_core.hookspecs import hookimpl

__all__ = ["ampel_cli_commands", "ampel_units"]


@hookimpl
def ampel_units() -> list[str]:
    return ["ampel_classifiers.units:T2LightCurveFeatures", "ampel_classifiers.units:T2Classifier"]


@hookimpl
def ampel_cli_commands() -> dict[str, str]:
    return {"classifiers": "ampel_classifiers._cli:classifiers"}
