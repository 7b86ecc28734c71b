"""AMPEL core: hooks, unit tiers, the provenance contract, stores and the runtime.

Import what you need from its modules (``ampel_core.units``, ``ampel_core.api`` ...); this package
imports nothing at start-up so that ``ampel --help`` stays fast.
"""
