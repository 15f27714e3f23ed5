"""Short join codes: 60 random bits, unambiguous symbols, forgiving when typed."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from roomserver.core import shortcode


def test_a_code_carries_sixty_bits_in_three_groups_of_four():
    code = shortcode.generate()
    assert len(code) == 14 and code[4] == code[9] == "-"
    assert math.log2(len(shortcode.ALPHABET)) * shortcode.LENGTH >= 60
    assert len({shortcode.generate() for _ in range(1000)}) == 1000


def test_no_symbol_is_mistaken_for_another_when_read_or_written():
    assert not set("ILOU") & set(shortcode.ALPHABET)
    assert len(set(shortcode.ALPHABET)) == 32


@given(st.integers(min_value=0, max_value=2**60 - 1))
def test_every_value_round_trips_and_typing_is_forgiving(value):
    code = shortcode.generate(value)
    canonical = code.replace("-", "")
    assert shortcode.normalise(code) == canonical
    sloppy = " " + code.lower().replace("0", "o").replace("1", "l") + " "
    assert shortcode.normalise(sloppy) == canonical
    assert shortcode.generate(int("".join(f"{shortcode.ALPHABET.index(c):05b}" for c in canonical), 2)) == code


def test_what_cannot_be_a_code_is_refused():
    for text in ("", "ABCD-EFGH", "ABCD-EFGH-JKMN-P", "ABCD-EFGH-JKM!", "ÄBCD-EFGH-JKMN", "x" * 100):
        assert shortcode.normalise(text) is None
    assert shortcode.digest("ABCDEFGHJKMN") != shortcode.digest("ABCDEFGHJKMP")
    assert len(shortcode.digest("ABCDEFGHJKMN")) == 64
