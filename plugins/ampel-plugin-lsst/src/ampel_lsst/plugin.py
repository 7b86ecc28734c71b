"""The plugin's hook implementations: import paths only, nothing heavy is imported here."""

from ampel_core.hookspecs import hookimpl

__all__ = ["ampel_alert_formats", "ampel_units"]


@hookimpl
def ampel_units() -> list[str]:
    return [
        "ampel_lsst.filters:SimpleLSSTFilter",
        "ampel_lsst.combiners:LSSTPhotometryCombiner",
    ]


@hookimpl
def ampel_alert_formats() -> dict[str, str]:
    return {
        "lsst": "ampel_lsst.format:LSSTAlertFormat",
        "elasticc": "ampel_lsst.format:ElasticcAlertFormat",
    }
