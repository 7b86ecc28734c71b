"""Fixtures of the LSST plugin's tests (``shared_data`` and ``register_plugin`` come from
``ampel_core.testing``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ampel_core.registry import Registry


@pytest.fixture
def lsst_registry(register_plugin: Callable[[object, str], Registry]) -> Registry:
    """A registry with only the core and this plugin (other installed plugins are not discovered)."""
    from ampel_lsst import plugin

    return register_plugin(plugin, "ampel-plugin-lsst")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The small sample alerts shipped with the plugin's tests (see data/README.md)."""
    return Path(__file__).parent / "data"
