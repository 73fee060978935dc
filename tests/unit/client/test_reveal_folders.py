"""A folder joining the release set is asked about once, not once per file."""

from __future__ import annotations

import pytest

from client.commands import _reveal
from client.commands._reveal import FileFacts, choose_for_adding
from vault.disclosure import Reveal


def _files(count: int, note: str = "") -> list[FileFacts]:
    return [
        FileFacts(filename=f"p{n}.jpg", size=10, captured_at="2026-01-01T00:00:00Z", note=note)
        for n in range(count)
    ]


def _answers(monkeypatch: pytest.MonkeyPatch, answers: dict[str, bool]) -> list[str]:
    asked: list[str] = []

    def yes(question: str, default: bool) -> bool:
        asked.append(question)
        return answers.get(question, default)

    monkeypatch.setattr(_reveal, "_yes", yes)
    monkeypatch.setattr(_reveal, "asks", lambda reveal, per_item=(): reveal is None)
    return asked


def test_three_questions_for_a_whole_folder(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = _answers(monkeypatch, {"Publish the file names?": False})
    chosen = choose_for_adding(_files(200, note="from K"), reveal=None)
    assert asked == [
        "Publish the file names?",
        "Publish the capture times?",
        "Publish the notes?",
        "Choose file by file instead?",
    ]
    assert chosen == [Reveal(name=False, time=True, note=False)] * 200
    said = capsys.readouterr().err
    assert "These 200 files join the release set" in said
    assert (
        "All 200 files: the release page shows each one's capture time; "
        "private: the file name, the note" in said
    )
    assert said.count("\n") == 2


def test_file_by_file_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _answers(
        monkeypatch, {"Choose file by file instead?": True, "p1.jpg: publish its name?": False}
    )
    chosen = choose_for_adding(_files(2), reveal=None)
    assert asked[-4:] == [
        "p0.jpg: publish its name?",
        "p0.jpg: publish its capture time (2026-01-01T00:00:00Z)?",
        "p1.jpg: publish its name?",
        "p1.jpg: publish its capture time (2026-01-01T00:00:00Z)?",
    ]
    assert chosen == [
        Reveal(name=True, time=True, note=False),
        Reveal(name=False, time=True, note=False),
    ]


def test_scripts_choose_with_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _answers(monkeypatch, {})
    assert choose_for_adding(_files(3), reveal="none") == [Reveal.parse("none")] * 3
    assert asked == []
