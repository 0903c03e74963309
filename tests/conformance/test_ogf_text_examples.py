"""The text examples of the OCCI 1.2 Text Rendering document (occiware/occi-wg, text_rendering.tex).

Blocks 01-10 are the ABNF itself: every rule line must be quoted in `occipy/rendering/_abnf.py`
(the grammar module says which rule each regex implements). Blocks 11 and 12 are one compute
rendered as text/plain and as text/occi; they parse, after undoing the HTTP-exchange notation
(`<` prefixes, `\\` continuations) and one erratum of the document (a missing `;`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from occipy.errors import ParseError
from occipy.rendering import _abnf, text

EXAMPLES = (Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance"
            / "ogf-occi-1.2-spec-examples" / "text_rendering")
GRAMMAR_SOURCE = Path(_abnf.__file__).read_text(encoding="utf-8")
COMPUTE = "http://schemas.ogf.org/occi/infrastructure#compute"
START = "http://schemas.ogf.org/occi/infrastructure/compute/action#start"


def _normalise(line: str) -> str:
    return " ".join(line.split())


def exchange_lines(name: str) -> list[str]:
    """Header lines of a `<`-prefixed HTTP exchange, `\\` continuations joined."""
    lines: list[str] = []
    joining = False
    for raw in (EXAMPLES / name).read_text(encoding="utf-8").splitlines():
        line = raw.removeprefix("<")
        continued = line.rstrip().endswith("\\")
        line = line.rstrip().removesuffix("\\").strip()
        if joining:
            lines[-1] += " " + line
        else:
            lines.append(line)
        joining = continued
    return lines


def fix_erratum(line: str) -> str:
    # Erratum of the document: `scheme="..." class="kind"` lacks the ';' between the parameters.
    return line.replace('#" class=', '#"; class=')


@pytest.mark.spec("T-02")
@pytest.mark.parametrize("name", [f"{n:02d}" for n in range(1, 6)])
def test_abnf_rules_are_quoted_in_the_grammar_module(name: str) -> None:
    block = next(EXAMPLES.glob(f"{name}-*.txt")).read_text(encoding="utf-8")
    source = _normalise(GRAMMAR_SOURCE)
    # The rules whose syntax the parser checks: their definition line must be quoted in _abnf.py.
    checked = {"term", "class", "attribute-property", "attribute-name", "int", "float", "bool",
               "action-uri", "type-identifier", "link-attribute", "location-value"}
    found = 0
    for match in re.finditer(r"^\s*([A-Za-z-]+)\s+=.*$", block, re.MULTILINE):
        if match.group(1) in checked:
            found += 1
            rule = _normalise(match.group(0))
            assert rule in source, f"rule `{rule}` of block {name} is not quoted in _abnf.py"
    assert found


@pytest.mark.spec("T-03")
@pytest.mark.parametrize("name", ["11-line366.txt", "12-line403.txt"])
def test_compute_example_parses(name: str) -> None:
    lines = [fix_erratum(line) for line in exchange_lines(name)]
    message = text.parse_entity(text.fields_from_body("\r\n".join(lines).encode()))
    headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines) if v]
    assert text.parse_entity(text.fields_from_headers(headers)) == message
    assert message.kind == COMPUTE
    assert message.action_links == (START,)
    assert message.attributes == {
        "occi.core.id": "urn:uuid:b9ff813e-fee5-4a9d-b839-673f39746096",
        "occi.core.title": "My Dummy VM",
        "occi.compute.architecture": "x86",
        "occi.compute.state": "inactive",
        "occi.compute.speed": 1.33,
        "occi.compute.memory": 2.0,
        "occi.compute.cores": 2,
        "occi.compute.hostname": "dummy",
    }


def test_compute_example_erratum_is_a_parse_error() -> None:
    """Without the repair the Category of example 11 is malformed: a 400, not a crash."""
    with pytest.raises(ParseError):
        text.parse_entity(text.fields_from_body("\n".join(exchange_lines("11-line366.txt")).encode()))
