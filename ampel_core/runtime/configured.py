"""Configured units and how each tier's unit is called: the one place where tiers are told apart.

`configure` builds a unit from its spec and computes its trace; `Channel.build` configures a
channel's filter, combiner and T2 units (dependencies first). `call_unit` calls any unit on its
tier's input, and `t2_body` / `verdict` check what a T2 unit or a filter returned. The T0/T2/T3
runtimes, ``ampel unit check`` and the pytest helper `ampel_core.testing.run_unit` all call units
through these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ampel_core.errors import AmpelError
from ampel_core.jobs import ChannelConfig, UnitSpec
from ampel_core.models import Trace
from ampel_core.provenance import canonical_json, code_digest, make_trace, resource_digests
from ampel_core.registry import Registry
from ampel_core.units import (
    AlertFilter, Combiner, PointUnit, ReactUnit, Reject, StateUnit, StockUnit, T2Unit, TiedStateUnit, Unit, UnitRef,
    build_unit,
)

__all__ = ["Channel", "ConfiguredUnit", "DependencyFailed", "build_component", "call_unit", "configure",
           "configure_dependencies", "t2_body", "verdict"]


@dataclass(frozen=True)
class ConfiguredUnit:
    """A unit instance with its trace."""

    name: str
    unit: Unit
    trace: Trace


def configure(registry: Registry, spec: UnitSpec | UnitRef) -> ConfiguredUnit:
    """Build a unit from its spec and compute its trace (UnitConfigError names unit and field)."""
    cls = registry.unit_class(spec.unit)
    unit = build_unit(cls, dict(spec.config or {}))
    component = registry.units[spec.unit]
    trace = make_trace(spec.unit, component.distribution, component.version, code_digest(cls),
                       resource_digests(unit.resources()), unit.model_dump(mode="json"))
    return ConfiguredUnit(spec.unit, unit, trace)


def configure_dependencies(registry: Registry, unit: TiedStateUnit) -> list[ConfiguredUnit]:
    """The configured units a tied unit depends on, in its order."""
    return [configure(registry, ref) for ref in unit.dependencies()]


def build_component(registry: Registry, kind: str, name: str, config: dict[str, Any]) -> Any:
    """Instantiate an alert source or format by registered name; errors name it and the field."""
    from pydantic import ValidationError

    cls = registry.component(kind, name)
    try:
        return cls(**config)
    except ValidationError as error:
        problems = "; ".join(f"'{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in error.errors())
        raise AmpelError(f"{kind[:-1]} '{name}': invalid config: {problems}") from None


@dataclass
class Channel:
    """A channel ready to run: its units configured, T2 units ordered dependencies first."""

    name: str
    access: frozenset[str] | None
    filter: ConfiguredUnit
    combiner: ConfiguredUnit | None
    t2: list[ConfiguredUnit]

    @classmethod
    def build(cls, registry: Registry, config: ChannelConfig) -> Channel:
        filter_unit = configure(registry, config.filter)
        if not isinstance(filter_unit.unit, AlertFilter):
            raise AmpelError(f"channel '{config.name}': filter '{config.filter.unit}' is not an AlertFilter (T0) unit")
        combiner = configure(registry, config.combiner) if config.combiner else None
        if combiner and not isinstance(combiner.unit, Combiner):
            raise AmpelError(f"channel '{config.name}': combiner '{combiner.name}' is not a Combiner (T1) unit")
        t2: dict[str, ConfiguredUnit] = {}
        for spec in config.t2:
            _add_with_dependencies(registry, configure(registry, spec), t2, config.name)
        return cls(config.name, frozenset(config.access) or None, filter_unit, combiner, list(t2.values()))

    def traces(self) -> list[Trace]:
        units = [self.filter, *([self.combiner] if self.combiner else []), *self.t2]
        return [u.trace for u in units]

    def sees(self, tags: Iterable[str]) -> bool:
        return self.access is None or not self.access.isdisjoint(tags)


def _add_with_dependencies(registry: Registry, configured: ConfiguredUnit, into: dict[str, ConfiguredUnit],
                           channel: str, chain: tuple[str, ...] = ()) -> None:
    if not isinstance(configured.unit, T2Unit):
        raise AmpelError(f"channel '{channel}': '{configured.name}' in t2 is not a T2 unit (it is tier {configured.unit.tier})")
    if configured.trace.id in into:
        return
    if configured.name in chain:
        raise AmpelError(f"channel '{channel}': dependency cycle {' -> '.join((*chain, configured.name))}")
    if isinstance(configured.unit, TiedStateUnit):
        for dependency in configure_dependencies(registry, configured.unit):
            _add_with_dependencies(registry, dependency, into, channel, (*chain, configured.name))
    into[configured.trace.id] = configured


class DependencyFailed(AmpelError):
    """A tied unit cannot run: one of its dependencies failed or has no ticket."""


def call_unit(unit: Unit, value: Any, dependencies: Mapping[str, Any] | None = None) -> Any:
    """Call ``unit`` on its tier's input ``value``: an Alert (filters), a list of DataPoints
    (combiners), a DataPoint (point units), a StateView (state and tied units, the latter with
    their ``dependencies``' result bodies by unit name), a StockView (stock units) or a list of
    StockViews (react units). Returns what the unit returned, unchecked."""
    if isinstance(unit, AlertFilter):
        return unit.process(value)
    if isinstance(unit, Combiner):
        return unit.combine(value)
    if isinstance(unit, TiedStateUnit):
        return unit.process(value, dict(dependencies or {}))
    if isinstance(unit, (PointUnit, StateUnit, StockUnit, ReactUnit)):
        return unit.process(value)
    raise TypeError(f"{type(unit).__name__} derives from no tier base class of ampel_core.units")


def t2_body(unit_name: str, output: Any) -> dict[str, Any]:
    """A T2 unit's output as a result body: TypeError unless it is a JSON-able dict."""
    if not isinstance(output, dict):
        raise TypeError(f"unit {unit_name} returned {type(output).__name__}, expected a dict")
    canonical_json(output)  # raises TypeError naming the type when the output is not JSON-able
    return output


def verdict(value: object) -> tuple[bool, int, str]:
    """(accepted, code, reason) from what a filter returned; TypeError for anything else."""
    if isinstance(value, Reject):
        return False, value.code, value.reason
    if value is True:
        return True, 1, ""
    if value is None or value is False:
        return False, 0, ""
    if isinstance(value, int):
        return (value > 0), value, ""
    raise TypeError(f"filter returned {value!r}; expected bool, int or Reject")
