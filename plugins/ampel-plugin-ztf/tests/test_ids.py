"""The objectId <-> stock id mapping is reversible, order-preserving and strict."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ampel_ztf.ids import MAX_STOCK_ID, to_stock_id, to_ztf_id

names = st.builds(lambda year, letters: f"ZTF{year:02d}{letters}", st.integers(0, 99),
                  st.text("abcdefghijklmnopqrstuvwxyz", min_size=7, max_size=7))


@given(names)
def test_name_round_trip(name: str) -> None:
    assert to_ztf_id(to_stock_id(name)) == name


@given(st.integers(0, MAX_STOCK_ID))
def test_stock_id_round_trip(stock: int) -> None:
    assert to_stock_id(to_ztf_id(stock)) == stock


@given(names, names)
def test_the_mapping_keeps_the_order_of_names(first: str, second: str) -> None:
    assert (first < second) == (to_stock_id(first) < to_stock_id(second))


def test_known_values() -> None:
    assert to_stock_id("ZTF00aaaaaaa") == 0
    assert to_stock_id("ZTF21abiuvdk") == 168683916684  # SN 2021rhu; stored ids must never change
    assert to_ztf_id(MAX_STOCK_ID) == "ZTF99zzzzzzz"
    assert MAX_STOCK_ID < 2**40


@pytest.mark.parametrize("name", ["", "ZTF21abiuvd", "ZTF21abiuvdkk", "ztf21abiuvdk", "ZTF21ABIUVDK", "ZTF2xabiuvdk",
                                  "ZTF21abiuvd1", "LSST21abiuvdk", " ZTF21abiuvdk", 12345, None])
def test_names_that_are_not_ztf_names_are_refused(name: object) -> None:
    with pytest.raises(ValueError, match="not a ZTF object name"):
        to_stock_id(name)  # type: ignore[arg-type]


@pytest.mark.parametrize("stock", [-1, MAX_STOCK_ID + 1, 1.0, "5", True])
def test_ids_outside_the_range_are_refused(stock: object) -> None:
    with pytest.raises(ValueError, match="not a ZTF stock id"):
        to_ztf_id(stock)  # type: ignore[arg-type]
