"""Hook implementations of ampel-plugin-serve (imported by every ``ampel`` command: keep it light)."""

from ampel_core.hookspecs import hookimpl

__all__ = ["ampel_cli_commands", "ampel_units"]


@hookimpl
def ampel_cli_commands() -> dict[str, str]:
    return {"serve": "ampel_serve._cli:serve", "submit": "ampel_serve._cli:submit"}


@hookimpl
def ampel_units() -> list[str]:
    return ["ampel_serve.push:WebhookPublisher", "ampel_serve.push:TNSReporter", "ampel_serve.push:KafkaPublisher"]
