"""The header-value splitter (text-rendering.md §3): the fast path for values without '<' gives exactly
what the character scanner gives, for every input, including the ParseError on an open quote."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from occipy.errors import ParseError
from occipy.rendering._abnf import _split_plain, _split_scanning, split_outside_quotes

# The characters that matter to the splitter, and a few that do not.
_TEXT = st.text(alphabet='"\\,; a=é\t', max_size=40)


def _outcome(split: object, text: str, sep: str) -> object:
    try:
        return split(text, sep)  # type: ignore[operator]
    except ParseError:
        return ParseError


@given(_TEXT, st.sampled_from([",", ";"]))
def test_the_fast_path_agrees_with_the_scanner(text: str, sep: str) -> None:
    assert _outcome(_split_plain, text, sep) == _outcome(_split_scanning, text, sep)


@pytest.mark.parametrize(("text", "parts"), [
    ('compute; scheme="http://x#"; class="kind"', ["compute", 'scheme="http://x#"', 'class="kind"']),
    ('a; title="x; y \\" z"; b', ["a", 'title="x; y \\" z"', "b"]),
    ('a="\\\\"; b', ['a="\\\\"', "b"]),  # an escaped backslash, then the closing quote
    ("a;;b; ", ["a", "b"]),
    ('</x;y>; rel="r"', ["</x;y>", 'rel="r"']),  # '<' takes the scanner: ';' inside the URI stays
])
def test_splits(text: str, parts: list[str]) -> None:
    assert split_outside_quotes(text, ";") == parts


def test_an_open_quote_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="unterminated"):
        split_outside_quotes('a; title="open', ";")
    with pytest.raises(ParseError, match="unterminated"):
        split_outside_quotes('a; title="ends escaped\\"', ";")
