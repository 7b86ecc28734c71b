"""Properties of the provenance contract: canonical JSON, trace ids, code digests, state ids."""

from __future__ import annotations

import hashlib
import importlib
import random
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampel_core.provenance import (
    canonical_json, code_digest, make_trace, module_digest, resource_digests, state_id,
)

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8) | st.floats(
    allow_nan=False, allow_infinity=False)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=20)


def shuffled(value: object, rng: random.Random) -> object:
    """The same JSON value with every dict's insertion order shuffled."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


@given(json_values, st.integers(0, 2**32))
def test_canonical_json_is_independent_of_key_order(value: object, seed: int) -> None:
    assert canonical_json(shuffled(value, random.Random(seed))) == canonical_json(value)


@given(st.dictionaries(st.text(max_size=6), json_scalars, min_size=1, max_size=6))
def test_canonical_json_sorts_keys_and_is_compact(value: dict) -> None:
    text = canonical_json(value).decode()
    import json

    assert json.loads(text) == json.loads(json.dumps(value, sort_keys=True))
    assert list(json.loads(text)) == sorted(value)


@given(st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(-(2**62), 2**62))
def test_numpy_scalars_and_arrays_serialise_like_python_values(x: float, n: int) -> None:
    assert canonical_json({"x": np.float64(x), "n": np.int64(n)}) == canonical_json({"x": x, "n": n})
    assert canonical_json(np.array([[x, x], [x, x]])) == canonical_json([[x, x], [x, x]])
    assert canonical_json(np.float32(1.5)) == canonical_json(1.5)


def test_canonical_json_names_unserialisable_types() -> None:
    with pytest.raises(TypeError, match="not JSON serializable: object"):
        canonical_json({"x": object()})


@given(st.lists(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=50), st.integers(0, 2**32))
def test_state_id_is_independent_of_order_and_repetition(ids: list[int], seed: int) -> None:
    other = ids + ids[: len(ids) // 2]
    random.Random(seed).shuffle(other)
    assert state_id(other) == state_id(ids)
    assert len(state_id(ids)) == 64


@given(st.sets(st.integers(-2**63, 2**63 - 1), min_size=1, max_size=30), st.integers(-2**63, 2**63 - 1))
def test_state_id_differs_for_different_sets(ids: set[int], extra: int) -> None:
    if extra not in ids:
        assert state_id(ids | {extra}) != state_id(ids)


def test_state_id_is_the_digest_of_the_packed_sorted_ids() -> None:
    # the definition stored ids rely on (docs/provenance.md): never change it
    assert state_id([7, -3, 7]) == hashlib.sha256((-3).to_bytes(8, "little", signed=True)
                                                  + (7).to_bytes(8, "little", signed=True)).hexdigest()
    with pytest.raises(struct.error):
        state_id([2**64])


TRACE_FIELDS = st.fixed_dictionaries({
    "unit": st.sampled_from(["T2A", "T2B"]), "distribution": st.sampled_from(["ampel-x", "ampel-y"]),
    "version": st.sampled_from(["1.0", "1.1"]), "code": st.sampled_from(["a" * 64, "b" * 64]),
    "resources": st.sampled_from([{}, {"model": "c" * 64}, {"model": "d" * 64}]),
    "config": st.sampled_from([{}, {"k": 1}, {"k": 2}, {"k": 1, "j": [1, 2]}])})


@given(TRACE_FIELDS, TRACE_FIELDS)
def test_trace_id_changes_when_and_only_when_an_input_changes(a: dict, b: dict) -> None:
    assert (make_trace(**a).id == make_trace(**b).id) == (a == b)


def test_trace_id_is_full_length_sha256() -> None:
    trace = make_trace("T2A", "ampel-x", "1.0", "a" * 64, {}, {"k": 1})
    assert len(trace.id) == 64 and int(trace.id, 16) >= 0


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway package: units -> .fitting -> .maths; .unrelated is imported by nobody."""
    root = tmp_path / "digestpkg"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "units.py").write_text("import json\nfrom . import fitting\n\nclass T2Thing:\n    pass\n")
    (root / "fitting.py").write_text("from digestpkg.maths import square\n")
    (root / "maths.py").write_text("def square(x):\n    return x * x\n")
    (root / "unrelated.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [m for m in sys.modules if m.startswith("digestpkg")]:
        del sys.modules[name]


def fresh_digest(module: str) -> str:
    module_digest.cache_clear()
    importlib.invalidate_caches()
    return module_digest(module)


def test_code_digest_covers_own_modules_imported_transitively(package: Path) -> None:
    before = fresh_digest("digestpkg.units")
    (package / "unrelated.py").write_text("X = 2\n")
    assert fresh_digest("digestpkg.units") == before  # not imported: not covered
    (package / "maths.py").write_text("def square(x):\n    return x ** 2\n")
    changed = fresh_digest("digestpkg.units")
    assert changed != before  # imported two levels down: covered
    (package / "units.py").write_text("import json\nfrom . import fitting\n\nclass T2Thing:\n    '''doc'''\n")
    assert fresh_digest("digestpkg.units") != changed


def test_code_digest_of_a_unit_class(package: Path) -> None:
    module_digest.cache_clear()
    module = importlib.import_module("digestpkg.units")
    assert code_digest(module.T2Thing) == module_digest("digestpkg.units")


def test_resource_digest_changes_with_file_content(tmp_path: Path) -> None:
    model = tmp_path / "model.dat"
    model.write_bytes(b"1 2 3\n")
    first = resource_digests({"salt2/template_0": model})
    model.write_bytes(b"1 2 4\n")
    second = resource_digests({"salt2/template_0": model})
    assert first != second and list(first) == ["salt2/template_0"]
    trace = lambda res: make_trace("T2Fit", "ampel-plugin-x", "1.0", "a" * 64, res, {}).id  # noqa: E731
    assert trace(first) != trace(second)


def test_missing_resource_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.dat"):
        resource_digests({"model": tmp_path / "nowhere.dat"})
