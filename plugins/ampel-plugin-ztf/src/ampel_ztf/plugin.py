"""The hook implementations of ampel-plugin-ztf (import paths only: imported by every ``ampel``)."""

from ampel_core.hookspecs import hookimpl

__all__ = ["ampel_alert_formats", "ampel_alert_sources", "ampel_units"]


@hookimpl
def ampel_units() -> list[str]:
    return ["ampel_ztf.filters:ZTFDecentFilter", "ampel_ztf.filters:ZTFAttributeFilter"]


@hookimpl
def ampel_alert_formats() -> dict[str, str]:
    return {"ztf": "ampel_ztf.alerts:ZTFAlertFormat"}


@hookimpl
def ampel_alert_sources() -> dict[str, str]:
    return {"ztf-kafka": "ampel_ztf.sources:ZTFKafkaSource"}
