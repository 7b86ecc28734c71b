"""The reversible mapping between ZTF object names and AMPEL stock ids.

A ZTF name is ``ZTF`` + two year digits + seven lowercase letters (``ZTF21abiuvdk``). Its stock id
is ``year * 26**7 + letters`` where the letters are read as a base-26 number (``a`` = 0), so every
name maps to one integer in ``[0, 100 * 26**7)`` (below 2**40) and back.
"""

from __future__ import annotations

import re
import string

__all__ = ["LETTERS", "MAX_STOCK_ID", "SPAN", "to_stock_id", "to_ztf_id"]

LETTERS = 7
SPAN: int = 26**LETTERS
MAX_STOCK_ID = 100 * SPAN - 1
_NAME = re.compile(r"ZTF(\d{2})([a-z]{7})")
_DIGITS = {letter: value for value, letter in enumerate(string.ascii_lowercase)}


def to_stock_id(name: str) -> int:
    """The stock id of ZTF object ``name``; ValueError if it is not a ZTF name."""
    match = _NAME.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"{name!r} is not a ZTF object name (ZTF + 2 digits + 7 lowercase letters)")
    year, letters = str(match[1]), str(match[2])
    number = 0
    for letter in letters:
        number = number * 26 + _DIGITS[letter]
    return int(year) * SPAN + number


def to_ztf_id(stock: int) -> str:
    """The ZTF name of ``stock`` (inverse of `to_stock_id`); ValueError outside its range."""
    if not isinstance(stock, int) or isinstance(stock, bool) or not 0 <= stock <= MAX_STOCK_ID:
        raise ValueError(f"{stock!r} is not a ZTF stock id (an int in 0..{MAX_STOCK_ID})")
    year, number = divmod(stock, SPAN)
    letters = []
    for _ in range(LETTERS):
        number, digit = divmod(number, 26)
        letters.append(string.ascii_lowercase[digit])
    return f"ZTF{year:02d}{''.join(reversed(letters))}"
