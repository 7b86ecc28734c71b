"""Every extension point of AMPEL, as pluggy hook specifications.

A plugin is a module with ``@hookimpl`` functions, declared by one entry point in the group
``ampel`` of its distribution. Keep that module light: it is imported by every ``ampel`` command.
Components are named by import path (``"package.module:Name"``) and imported only when used, so a
broken or slow unit module never slows down or breaks anything that does not use it.
"""

from __future__ import annotations

from typing import Any

import pluggy

__all__ = ["ampel_alert_formats", "ampel_alert_sources", "ampel_batch_done", "ampel_cli_commands",
           "ampel_config_fragments", "ampel_run_finished", "ampel_run_started", "ampel_stores", "ampel_units",
           "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("ampel")
hookimpl = pluggy.HookimplMarker("ampel")


@hookspec
def ampel_units() -> list[str]:
    """Units this plugin provides, as ``"module:Class"`` import paths.

    Each class derives from a tier base class of `ampel_core.units`; its name is the unit's name
    and must be unique across installed distributions.
    """


@hookspec
def ampel_alert_formats() -> dict[str, str]:
    """Alert formats by name, as import paths of `ampel_core.alerts.AlertFormat` classes."""


@hookspec
def ampel_alert_sources() -> dict[str, str]:
    """Alert sources by name, as import paths of `ampel_core.alerts.AlertSource` classes."""


@hookspec
def ampel_stores() -> dict[str, str]:
    """Store backends by URL scheme (``sqlite``, ``postgresql``), as import paths of callables
    ``open_store(url: str, read_only: bool = False) -> ampel_core.store.Store``; read-only stores
    create and change nothing (see `ampel_core.sql_store.SqlStore`)."""


@hookspec
def ampel_config_fragments() -> dict[str, Any]:
    """Config this plugin contributes: ``{"channels": {name: channel}, "aliases": {name: value}}``.

    Channels have the form of a job's channel (see `ampel_core.jobs.ChannelConfig`); a job uses one
    by giving its name as a plain string in its ``channels`` list. Aliases are parameters every
    job has (``${name}`` in a job; the job's own parameters and ``--set`` override them). Two
    plugins giving one channel or alias name different values are refused (`RegistryError`).
    """


@hookspec
def ampel_cli_commands() -> dict[str, str]:
    """Sub-commands of ``ampel`` by name, as import paths of click commands (loaded on use)."""


@hookspec
def ampel_run_started(run_id: int, job: dict[str, Any]) -> None:
    """Observer: a run (``ampel job`` or a worker) has started."""


@hookspec
def ampel_batch_done(run_id: int, tier: int, counts: dict[str, int]) -> None:
    """Observer: a batch of work finished; ``counts`` are the batch's counters (for metrics)."""


@hookspec
def ampel_run_finished(run_id: int, summary: dict[str, Any]) -> None:
    """Observer: a run has ended with this summary (see `ampel_core.runtime.RunSummary`)."""
