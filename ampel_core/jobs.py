"""Job files: a YAML document validated by `Job` (see docs/jobs.md).

``${name}`` in any string is replaced by the job parameter ``name``; ``--set name=value`` on the
command line overrides a parameter (values are parsed as YAML, so ``--set limit=10`` is an int).
Installed plugins contribute through ``ampel_config_fragments``: their *aliases* are parameters
every job has (a job's own parameters and ``--set`` override them), and their *channels* are used
by name: a channel given as a plain string in a job is the installed channel of that name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ampel_core.errors import AmpelError

__all__ = ["ChannelConfig", "ComponentSpec", "Job", "Selection", "Strict", "T0Task", "T2Task", "T3Task", "Task",
           "UnitSpec", "load_job", "parse_overrides", "substitute"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UnitSpec(Strict):
    """A unit by name with its configuration."""

    unit: str
    config: dict[str, Any] = Field(default_factory=dict)


class ComponentSpec(Strict):
    """An alert source or format by its registered name, with its configuration."""

    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class ChannelConfig(Strict):
    """A science programme: which datapoints it may see, its filter, combiner and T2 units."""

    name: str
    access: list[str] = Field(default_factory=list, description="Datapoint tags this channel may see (empty: all).")
    filter: UnitSpec = Field(default_factory=lambda: UnitSpec(unit="AcceptAll"))
    combiner: UnitSpec | None = None
    t2: list[UnitSpec] = Field(default_factory=list)


class T0Task(Strict):
    tier: Literal[0]
    source: ComponentSpec
    format: ComponentSpec
    channels: list[str] | None = Field(None, description="Channels to run (default: all of the job).")
    batch_size: int = Field(200, ge=1, description="Alerts per transaction.")
    limit: int | None = Field(None, ge=0, description="Stop after this many source records.")
    keep_blobs: bool = Field(True, description="Store alert blobs (e.g. cutouts) by alert.")


class T2Task(Strict):
    tier: Literal[2]
    channels: list[str] | None = None
    max_attempts: int = Field(3, ge=1, description="Tries per ticket before it fails for good.")
    backoff: float = Field(1.0, ge=0, description="Seconds before the first retry; doubles on each retry.")
    lease: float = Field(300.0, gt=0, description="Seconds a claimed ticket stays leased to this worker.")
    batch_size: int = Field(50, ge=1)


class Selection(Strict):
    channel: str | None = None
    tags: list[str] = Field(default_factory=list)
    updated_after: float | None = None
    updated_before: float | None = None
    since_last_report: bool = Field(
        False, description="Give each react unit only the stocks whose latest state it has not yet reported "
        "(same unit, configuration and channel; a report that failed reports nothing): a push unit announces "
        "each state of a stock once.")
    results: dict[str, Any] = Field(
        default_factory=dict,
        description="'<Unit>.<key>...' -> value, or -> {op: value} with op in eq, ne, gt, gte, lt, lte, in, exists.")


class T3Task(Strict):
    tier: Literal[3]
    select: Selection = Field(default_factory=Selection)
    react: list[UnitSpec]


Task = Annotated[T0Task | T2Task | T3Task, Field(discriminator="tier")]


class Job(Strict):
    name: str = "job"
    store: str = "sqlite:///ampel.db"
    parameters: dict[str, Any] = Field(default_factory=dict)
    channels: list[ChannelConfig] = Field(default_factory=list)
    tasks: list[Task]

    @model_validator(mode="after")
    def _channels_exist(self) -> Job:
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique: {names}")
        for task in self.tasks:
            wanted = getattr(task, "channels", None) or []
            if isinstance(task, T3Task) and task.select.channel:
                wanted = [task.select.channel]
            unknown = set(wanted) - set(names)
            if unknown:
                raise ValueError(f"task (tier {task.tier}) names unknown channel(s) {sorted(unknown)}; job channels: {names}")
        return self


_PARAMETER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(value: Any, parameters: dict[str, Any]) -> Any:
    """Replace ``${name}`` in every string of ``value``; a string that is one reference takes the
    parameter's own type."""
    if isinstance(value, str):
        whole = _PARAMETER.fullmatch(value)
        if whole:
            return parameters[whole.group(1)] if whole.group(1) in parameters else _missing(whole.group(1), parameters)
        return _PARAMETER.sub(lambda m: str(parameters[m.group(1)]) if m.group(1) in parameters
                              else _missing(m.group(1), parameters), value)
    if isinstance(value, dict):
        return {k: substitute(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, parameters) for v in value]
    return value


def _missing(name: str, parameters: dict[str, Any]) -> str:
    raise AmpelError(f"job refers to parameter ${{{name}}}, which is not defined (parameters: "
                     f"{', '.join(sorted(parameters)) or 'none'}); add it under 'parameters' or pass --set {name}=...")


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    import yaml

    overrides = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise AmpelError(f"--set expects name=value, got {pair!r}")
        overrides[name.strip()] = yaml.safe_load(raw)
    return overrides


def _installed_channel(channel: Any, installed: dict[str, Any], label: str) -> Any:
    if not isinstance(channel, str):
        return channel
    if channel not in installed:
        raise AmpelError(f"{label}: channel '{channel}' is not an installed channel (installed: "
                         f"{', '.join(sorted(installed)) or 'none'}); give its definition instead of its name")
    return {**installed[channel], "name": channel}


def load_job(source: str | Path | dict[str, Any], overrides: dict[str, Any] | None = None,
             store: str | None = None) -> Job:
    """Read, substitute and validate a job; AmpelError names the file and each bad field."""
    import yaml

    label = str(source) if not isinstance(source, dict) else "job"
    if isinstance(source, dict):
        document = source
    else:
        path = Path(source)
        if not path.exists():
            raise AmpelError(f"job file not found: {path}")
        try:
            document = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise AmpelError(f"{path}: not valid YAML: {error}") from None
        except (OSError, UnicodeDecodeError) as error:
            raise AmpelError(f"{path}: cannot read the job file ({error})") from None
    if not isinstance(document, dict):
        raise AmpelError(f"{label}: a job is a YAML mapping (name, store, channels, tasks)")
    from ampel_core.registry import get_registry

    installed = get_registry()
    parameters = {**installed.aliases, **document.get("parameters", {}), **(overrides or {})}
    document = {**document, "channels": [_installed_channel(c, installed.channels, label)
                                         for c in document.get("channels") or []]}
    document = substitute({**document, "parameters": {}}, parameters)
    document["parameters"] = parameters
    if store:
        document["store"] = store
    try:
        return Job.model_validate(document)
    except ValidationError as error:
        problems = "\n".join(f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise AmpelError(f"{label}: invalid job:\n{problems}") from None
