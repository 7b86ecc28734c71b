"""The ``ampel`` command line. Sub-commands are imported only when invoked, so ``ampel --help``
stays fast; plugins add sub-commands through the ``ampel_cli_commands`` hook."""

from __future__ import annotations

import sys
from typing import Any

import click

__all__ = ["COMMANDS", "LazyGroup", "cli", "main"]

# name -> (import path, one-line help); imported on use
COMMANDS = {
    "config": ("ampel_core._cli_config:config", "Build or check the generated config."),
    "plugins": ("ampel_core._cli_config:plugins", "List installed plugins and their versions."),
    "units": ("ampel_core._cli_config:units", "List installed units."),
    "unit": ("ampel_core._cli_config:unit", "Show or check one unit."),
    "job": ("ampel_core._cli_run:job", "Run a job file (T0, T2, T3 tasks) and print its summary."),
    "worker": ("ampel_core._cli_run:worker", "Run a long-lived worker (T2 tickets) against a store."),
    "quarantine": ("ampel_core._cli_quarantine:quarantine", "List or show records that could not be decoded or read."),
    "runs": ("ampel_core._cli_inspect:runs", "List recorded runs."),
    "stock": ("ampel_core._cli_inspect:stock", "Show or plot one stock."),
    "provenance": ("ampel_core._cli_inspect:provenance", "Trace a result, state or datapoint back to its alert and run."),
    "replay": ("ampel_core._cli_inspect:replay", "Re-run a recorded run into a scratch store and compare results."),
    "diff": ("ampel_core._cli_inspect:diff", "Compare the results of two runs."),
    "archive": ("ampel_core._cli_archive:archive", "Build or inspect an alert archive partitioned by stock."),
}


class LazyGroup(click.Group):
    def _plugin_commands(self) -> dict[str, tuple[str, str]]:
        from ampel_core.registry import get_registry

        try:
            return {name: (c.import_path, f"[{c.distribution}]") for name, c in get_registry().commands.items()}
        except Exception as error:  # a broken plugin must not make `ampel config build` unusable
            click.echo(f"warning: plugin commands unavailable: {error}", err=True)
            return {}

    def _all(self) -> dict[str, tuple[str, str]]:
        return {**self._plugin_commands(), **COMMANDS}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._all())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = self._all().get(name)
        if entry is None:
            return None
        from ampel_core.registry import import_object

        command: click.Command = import_object(entry[0])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(self._all().items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(package_name="ampel-core", prog_name="ampel")
def cli() -> None:
    """AMPEL: process astronomical alert streams with full provenance."""


def main(argv: list[str] | None = None) -> Any:
    """The ``ampel`` command: exit 0 when done, 2 with one ``error:`` line when it could not run (a
    usage error prints click's usage and ``Error:`` line), 130 when interrupted; never a traceback
    (``AMPEL_DEBUG=1`` shows one for an internal error)."""
    from ampel_core.errors import user_errors

    with user_errors():
        arguments = sys.argv[1:] if argv is None else argv
        if any("\0" in argument for argument in arguments):  # no file name or URL can hold one
            from ampel_core.errors import AmpelError

            raise AmpelError("an argument contains a NUL character")
        try:
            return cli.main(args=argv, prog_name="ampel", standalone_mode=False)
        except click.exceptions.Abort:  # click's form of Ctrl-C
            raise KeyboardInterrupt from None
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)


if __name__ == "__main__":
    sys.exit(main())
