"""The core's own components, registered as an ordinary plugin (entry point ``core``)."""

from ampel_core.hookspecs import hookimpl


@hookimpl
def ampel_units() -> list[str]:
    return [
        "ampel_core.units:Combiner",
        "ampel_core.builtin_units:AcceptAll",
        "ampel_core.builtin_units:MinDetectionsFilter",
        "ampel_core.builtin_units:T2LightCurveSummary",
        "ampel_core.builtin_units:T3TableReport",
        "ampel_core.builtin_units:T3JsonExport",
    ]


@hookimpl
def ampel_alert_formats() -> dict[str, str]:
    return {"json": "ampel_core.alerts:JsonAlertFormat"}


@hookimpl
def ampel_alert_sources() -> dict[str, str]:
    return {"files": "ampel_core.alerts:FileSource", "kafka": "ampel_core.kafka:KafkaSource",
            "archive": "ampel_core.archive:ArchiveSource"}


@hookimpl
def ampel_stores() -> dict[str, str]:
    return {"sqlite": "ampel_core.sqlite_store:open_store"}
