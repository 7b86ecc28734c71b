"""Unit base classes for the four tiers.

A unit is a pydantic model: its configuration fields are class annotations with defaults, validated
when the unit is built, and exportable as JSON schema (`config_schema`). Build units with
`build_unit`, whose `UnitConfigError` names the unit and the offending fields. Units never touch the
store: the runtime hands them datapoints or read-only views and stores what they return.

Unit modules are imported when a config is built, so keep heavy imports (sncosmo, astropy) inside
methods or `model_post_init`, not at module level.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ampel_core.errors import AmpelError
from ampel_core.models import Alert, DataPoint

if TYPE_CHECKING:
    from ampel_core.views import StateView, StockView

__all__ = ["JSON", "UNIT_BASES", "AlertFilter", "Combiner", "PointUnit", "ReactUnit", "Reject", "StateUnit",
           "StockUnit", "T2Unit", "TiedStateUnit", "Unit", "UnitConfigError", "UnitRef", "build_unit",
           "config_schema", "unit_kind"]

JSON = dict[str, Any]


class UnitConfigError(AmpelError, ValueError):
    """A unit's configuration is invalid; the message names the unit and each bad field."""


class Unit(BaseModel):
    """Base of every unit. Subclasses add config fields as annotated class attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    tier: ClassVar[int]
    kind: ClassVar[str]

    def resources(self) -> Mapping[str, str | Path]:
        """Files this configured unit reads (e.g. model files), by a stable name.

        Their sha256 digests are part of the unit's trace, so a changed model file gives a new
        trace id. Override in units that read files.
        """
        return {}

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(f"ampel.unit.{type(self).__name__}")


def build_unit(cls: type[Unit], config: Mapping[str, Any] | None = None) -> Unit:
    """Instantiate ``cls`` with ``config``; raise `UnitConfigError` naming unit and fields."""
    try:
        return cls(**(config or {}))
    except ValidationError as error:
        problems = "; ".join(
            f"field '{'.'.join(map(str, e['loc'])) or '(root)'}': {e['msg']} (got {e.get('input')!r:.60})"
            for e in error.errors()
        )
        raise UnitConfigError(f"unit '{cls.__name__}': invalid config: {problems}") from None


def config_schema(cls: type[Unit]) -> JSON:
    """The JSON schema of a unit's configuration (fields, types, defaults, descriptions)."""
    return cls.model_json_schema()


# T0 ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reject:
    """A filter's reason to reject an alert: a negative-or-zero ``code`` and a short ``reason``."""

    code: int = 0
    reason: str = ""


class AlertFilter(Unit):
    """T0: decide whether a channel takes an alert.

    ``process`` returns True (or a positive int, kept as the accept code) to accept, and False,
    None, a non-positive int or `Reject(code, reason)` to reject. It must not raise on odd alerts;
    an exception is recorded as a failure of this alert for this channel.
    """

    tier: ClassVar[int] = 0
    kind: ClassVar[str] = "filter"

    def process(self, alert: Alert) -> bool | int | Reject | None:
        raise NotImplementedError


# T1 ------------------------------------------------------------------------------------------


class Combiner(Unit):
    """T1: choose which of a stock's datapoints (already limited to the channel's rights) form the
    channel's state. The default takes them all."""

    tier: ClassVar[int] = 1
    kind: ClassVar[str] = "combiner"

    def combine(self, datapoints: Sequence[DataPoint]) -> list[int]:
        return [dp.id for dp in datapoints]


# T2 ------------------------------------------------------------------------------------------


class T2Unit(Unit):
    """Common base of T2 units: ``process`` returns a JSON-able dict (the result body)."""

    tier: ClassVar[int] = 2
    link: ClassVar[Literal["point", "state", "stock"]]


class PointUnit(T2Unit):
    """T2 on each new datapoint a channel sees (upper limits only if ``upper_limits`` is True)."""

    kind: ClassVar[str] = "point"
    link: ClassVar[Literal["point", "state", "stock"]] = "point"
    upper_limits: ClassVar[bool] = False

    def process(self, datapoint: DataPoint) -> JSON:
        raise NotImplementedError


class StateUnit(T2Unit):
    """T2 on each new state of a channel (a light curve: ``state.table()``)."""

    kind: ClassVar[str] = "state"
    link: ClassVar[Literal["point", "state", "stock"]] = "state"

    def process(self, state: StateView) -> JSON:
        raise NotImplementedError


class StockUnit(T2Unit):
    """T2 on a stock (its names, channels, tags, all visible datapoints)."""

    kind: ClassVar[str] = "stock"
    link: ClassVar[Literal["point", "state", "stock"]] = "stock"

    def process(self, stock: StockView) -> JSON:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class UnitRef:
    """A configured unit by name, as a dependency or in a channel definition."""

    unit: str
    config: Mapping[str, Any] | None = None


class TiedStateUnit(T2Unit):
    """T2 on a state that needs other T2 results first (e.g. a host-galaxy redshift for a fit).

    ``dependencies()`` lists the units (by name, with config) to run first on the same state (state
    units) or stock (stock units); ``process`` receives their result bodies keyed by unit name. The
    runtime runs dependencies first and retries this unit until they are done.
    """

    kind: ClassVar[str] = "tied"
    link: ClassVar[Literal["point", "state", "stock"]] = "state"
    depends_on: ClassVar[tuple[str, ...]] = ()

    def dependencies(self) -> list[UnitRef]:
        return [UnitRef(name) for name in self.depends_on]

    def process(self, state: StateView, dependencies: Mapping[str, JSON]) -> JSON:
        raise NotImplementedError


# T3 ------------------------------------------------------------------------------------------


class ReactUnit(Unit):
    """T3: react to a selection of stocks (read-only views with their latest results).

    ``process`` returns a JSON-able report (or None); the runtime records it with the run.
    """

    tier: ClassVar[int] = 3
    kind: ClassVar[str] = "react"

    def process(self, views: Sequence[StockView]) -> JSON | None:
        raise NotImplementedError


UNIT_BASES: tuple[type[Unit], ...] = (
    AlertFilter, Combiner, PointUnit, StateUnit, StockUnit, TiedStateUnit, ReactUnit,
)


def unit_kind(cls: type) -> str:
    """The kind of a unit class ('filter', 'combiner', 'point', 'state', 'stock', 'tied', 'react');
    TypeError when it derives from none of the base classes."""
    if isinstance(cls, type) and issubclass(cls, Unit) and hasattr(cls, "kind"):
        return cls.kind
    raise TypeError(f"{cls!r} is not a unit: derive it from one of "
                    + ", ".join(base.__name__ for base in UNIT_BASES))
