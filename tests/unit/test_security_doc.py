"""SECURITY.md: every adversary has a section with its table, and every test named there exists.

Each adversary section ends with a "Mechanism → test" table whose rows name
the tests that show a mechanism, as pytest node ids in backquotes
(``tests/…/test_x.py::test_name``, ``…::TestClass::test_name``, with or
without a ``[parameter]``). Each id must name a file under ``tests/`` that
defines that test, read with :mod:`ast`, so renaming or removing a test
without updating SECURITY.md fails here. A test a class only inherits is
not seen: name it where it is defined. A row without a test must say so.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
TABLE = "**Mechanism → test**"
NODE_ID = re.compile(r"`(tests/[^`\s:]+\.py::[^`]+)`")
NO_TEST = "no test yet"

ADVERSARIES = {
    # As the product's issue names them → the heading of their section.
    "device seizure": "Device seizure",
    "coerced reporter": "Coercion of the reporter",
    "compromised or compelled operator": "Compromised or subpoenaed server and operator",
    "malicious editor": "Malicious editor or trustee",
    "network observer": "Network observer",
    "quantum-capable future adversary": "Future quantum adversary",
}
KNOWN_LIMITS = (
    "Metadata the server sees",
    "The audit log is public",
    "Sizes and timing",
    "Endpoint compromise",
    "what `panic` can and cannot wipe",
)


def sections(text: str, level: int) -> dict[str, str]:
    """Heading → body for the headings with ``level`` hashes, each up to the next heading at or
    above that level."""
    heading = re.compile(rf"^{'#' * level} (.+)$", re.M)
    higher = re.compile(rf"^#{{1,{level}}} ", re.M)
    found = {}
    for match in heading.finditer(text):
        start = match.end()
        following = higher.search(text, start)
        found[match.group(1).strip()] = text[start : following.start() if following else len(text)]
    return found


def section(title: str) -> str:
    """The body of the one ``###`` section whose heading contains ``title``."""
    matches = [body for heading, body in sections(DOC, 3).items() if title in heading]
    assert len(matches) == 1, f"SECURITY.md needs one section headed {title!r}"
    return matches[0]


def table_rows(body: str) -> list[tuple[str, str]]:
    """The (mechanism, tests) rows of the table that follows the ``TABLE`` line in ``body``."""
    assert TABLE in body, f"no {TABLE!r} line"
    lines = body.split(TABLE, 1)[1].strip().splitlines()
    table = []
    for line in lines:
        if not line.startswith("|"):
            break
        table.append(line)
    assert len(table) >= 3, "the table has no rows"
    assert re.fullmatch(r"\|( *-+ *\|)+", table[1]), f"not a table separator: {table[1]!r}"
    rows = []
    for line in table[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 2, f"a row is | mechanism | tests |: {line!r}"
        rows.append((cells[0], cells[1]))
    return rows


def defined_tests(source: str) -> set[str]:
    """Module-level test functions as ``name``, methods of test classes as ``Class::name``."""
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for member in node.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}::{member.name}")
    return {name for name in names if name.rsplit("::", 1)[-1].startswith("test")}


@functools.cache
def names_in(path: Path) -> frozenset[str]:
    return frozenset(defined_tests(path.read_text(encoding="utf-8")))


def split_node_id(node_id: str) -> tuple[str, str]:
    """``path::[Class::]test[param]`` → (path, ``[Class::]test``), the parameter dropped."""
    path, _, name = node_id.partition("::")
    return path, re.sub(r"\[.*\]$", "", name)


def missing(node_id: str) -> str | None:
    """Why ``node_id`` names no test in this repository, or None if it does."""
    path, name = split_node_id(node_id)
    file = (ROOT / path).resolve()
    if not file.is_relative_to(ROOT / "tests") or file.suffix != ".py":
        return f"{path} is not a test file under tests/"
    if not file.is_file():
        return f"{path} does not exist"
    if name not in names_in(file):
        return f"{path} defines no test {name!r}"
    return None


NODE_IDS = sorted(set(NODE_ID.findall(DOC)))


# The checker itself --------------------------------------------------------------


def test_node_ids_are_split_and_found_as_pytest_names_them() -> None:
    source = (
        "import pytest\n"
        "def test_plain(): pass\n"
        "async def test_async(): pass\n"
        "def helper(): pass\n"
        "class TestThing:\n"
        "    def test_method(self): pass\n"
        "    def helper(self): pass\n"
        "def outer():\n"
        "    def test_nested(): pass\n"
    )
    assert defined_tests(source) == {"test_plain", "test_async", "TestThing::test_method"}
    assert split_node_id("tests/a.py::test_x[sqlite-b-1]") == ("tests/a.py", "test_x")
    assert split_node_id("tests/a.py::TestThing::test_method") == (
        "tests/a.py",
        "TestThing::test_method",
    )
    here = "tests/unit/test_security_doc.py"
    assert missing(f"{here}::test_every_named_test_exists") is None
    assert missing(f"{here}::test_every_named_test_exists[one]") is None
    renamed = f"{here}::test_a_renamed_test"
    assert missing(renamed) == f"{here} defines no test 'test_a_renamed_test'"
    absent = "tests/unit/no_such_file.py"
    assert missing(f"{absent}::test_x") == f"{absent} does not exist"
    assert missing("tests/../SECURITY.py::test_x") is not None


def test_rows_are_read_from_the_table_after_the_marker() -> None:
    body = (
        f"Text.\n\n{TABLE}\n\n| mechanism | tests |\n|---|---|\n"
        "| a lock | `tests/a.py::test_lock`<br>`tests/b.py::test_key` |\n"
        f"| a wall | {NO_TEST} |\n\nMore text | with a bar.\n"
    )
    assert table_rows(body) == [
        ("a lock", "`tests/a.py::test_lock`<br>`tests/b.py::test_key`"),
        ("a wall", NO_TEST),
    ]
    named = NODE_ID.findall(table_rows(body)[0][1])
    assert named == ["tests/a.py::test_lock", "tests/b.py::test_key"]


# SECURITY.md -------------------------------------------------------------------------


@pytest.mark.parametrize("adversary", list(ADVERSARIES))
def test_every_adversary_has_a_section_with_a_table(adversary: str) -> None:
    rows = table_rows(section(ADVERSARIES[adversary]))
    named = [node_id for _, tests in rows for node_id in NODE_ID.findall(tests)]
    assert named, f"the {adversary} table names no test"
    for mechanism, tests in rows:
        assert mechanism, f"a row of the {adversary} table names no mechanism"
        assert NODE_ID.search(tests) or tests.startswith(NO_TEST), (
            f"{adversary}: the row {mechanism!r} neither names a test nor says {NO_TEST!r}"
        )


def test_the_editor_section_says_what_they_can_and_cannot_do() -> None:
    editor = section(ADVERSARIES["malicious editor"])
    assert "**What they can do:**" in editor
    assert "**What they cannot do:**" in editor


def test_the_tables_name_enough_tests() -> None:
    assert len(NODE_IDS) >= 60, NODE_IDS
    in_tables = {
        node_id
        for title in ADVERSARIES.values()
        for _, tests in table_rows(section(title))
        for node_id in NODE_ID.findall(tests)
    }
    # Every test SECURITY.md names is in one of the tables.
    assert in_tables == set(NODE_IDS)


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_every_named_test_exists(node_id: str) -> None:
    assert missing(node_id) is None, f"SECURITY.md names {node_id}: {missing(node_id)}"


def test_known_limits_cover_the_issue() -> None:
    limits = sections(DOC, 2)["4. Known limits"]
    headings = list(sections(limits, 3))
    for limit in KNOWN_LIMITS:
        assert any(limit in heading for heading in headings), f"no known limit {limit!r}"
    assert "IP address" in limits
    assert "SSD" in limits


def test_how_to_report_a_vulnerability_is_first() -> None:
    numbered = [heading for heading in sections(DOC, 2) if heading[0].isdigit()]
    assert numbered[0] == "1. Reporting a vulnerability"
