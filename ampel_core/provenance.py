"""The provenance contract: canonical JSON, code digests, trace ids and state ids.

Every hash here is a full-length sha256 hex digest. `canonical_json` is the single serialisation
used for hashing and storage: keys sorted at every depth, no insignificant whitespace, floats in
their shortest round-trip form, numpy scalars and arrays as their Python equivalents. Non-finite
floats (NaN, inf) are not valid JSON and encode as ``null``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import inspect
import struct
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from ampel_core.models import Trace

__all__ = ["canonical_json", "code_digest", "digest", "file_digest", "json_default", "make_trace", "module_digest",
           "resource_digests", "sha256_hex", "state_id"]

_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_default(value: Any) -> Any:
    # numpy scalars and the few types orjson leaves to us
    if hasattr(value, "item") and hasattr(value, "dtype"):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (tuple, Path)):
        return list(value) if isinstance(value, tuple) else str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable: {value!r:.80}")


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` deterministically (sorted keys, compact, shortest floats) to UTF-8 bytes.

    Raises TypeError naming the type for values that have no JSON form.
    """
    return orjson.dumps(value, default=json_default, option=_OPTIONS)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest(value: Any) -> str:
    """sha256 of the canonical JSON of ``value``."""
    return sha256_hex(canonical_json(value))


def state_id(datapoint_ids: Iterable[int]) -> str:
    """The id of the state made of these datapoints: independent of their order and repetition.

    sha256 of the sorted, distinct ids as little-endian signed 64-bit integers (the store's ids are
    64-bit); struct.error for an id outside that range."""
    ids = sorted(set(datapoint_ids))
    return sha256_hex(struct.pack(f"<{len(ids)}q", *ids))


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes; FileNotFoundError names the file."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of the modules ``source`` imports (relative imports resolved)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            # `from pkg import submodule` imports a module too
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _find_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    if name in sys.modules:
        return getattr(sys.modules[name], "__spec__", None)
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):  # `from pkg.module import function` names no module
        return None


@cache
def module_digest(module: str) -> str:
    """Digest of a module's source and, transitively, of the modules of its own top-level package
    that it imports. Modules of other distributions are covered by their version, not their code.
    """
    top = module.partition(".")[0]
    seen: dict[str, str] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        spec = _find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            if name == module:
                raise LookupError(f"module {module!r} has no Python source to digest")
            continue
        source = Path(spec.origin).read_bytes()
        seen[name] = sha256_hex(source)
        is_package = spec.submodule_search_locations is not None
        for imported in _imported_modules(source.decode(), name, is_package):
            if imported == top or imported.startswith(top + "."):
                pending.append(imported)
    return digest(seen)


def code_digest(cls: type) -> str:
    """Digest of the code behind a unit class (its module and the own-package modules it imports).

    A class defined outside a module file (a notebook cell) is digested by its own source text.
    """
    try:
        return module_digest(cls.__module__)
    except LookupError:
        return sha256_hex(inspect.getsource(cls).encode())


def resource_digests(resources: Mapping[str, str | Path]) -> dict[str, str]:
    """sha256 of each declared resource file, keyed by its declared (machine-independent) name."""
    return {name: file_digest(path) for name, path in sorted(resources.items())}


def make_trace(
    unit: str, distribution: str, version: str, code: str,
    resources: Mapping[str, str], config: Mapping[str, Any],
) -> Trace:
    """Build the `Trace` of a configured unit; its id is the digest of everything else in it."""
    doc = {"unit": unit, "distribution": distribution, "version": version, "code": code,
           "resources": dict(resources), "config": dict(config)}
    return Trace(id=digest(doc), **doc)  # type: ignore[arg-type]
