"""A download whose connection drops asks for the rest (Range, If-Range) and goes on."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from urllib3.exceptions import ProtocolError

from client.api import Api, ApiError
from client.items import _Body

DATA = bytes(range(256)) * 4


class _Raw:
    """A response body that breaks after ``cut`` bytes, as a server killed mid-answer does."""

    def __init__(self, data: bytes, cut: int | None = None) -> None:
        self.data, self.cut = data, cut

    def stream(self, size: int, decode_content: bool = True) -> Iterator[bytes]:
        end = len(self.data) if self.cut is None else self.cut
        for start in range(0, end, 100):
            yield self.data[start : min(start + 100, end)]
        if self.cut is not None:
            raise ProtocolError("Connection broken: IncompleteRead")

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def _answer(status: int, raw: _Raw, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.raw = raw
    response.headers.update(headers)
    return response


class _Server:
    def __init__(self, answers: list[requests.Response]) -> None:
        self.answers = answers
        self.asked: list[dict[str, str]] = []

    def __call__(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.asked.append(dict(kwargs["headers"]))
        return self.answers.pop(0)


class _Client:
    def __init__(self, api: Api) -> None:
        self.api = api

    def authed(self) -> Api:
        return self.api


class _Progress:
    def __init__(self) -> None:
        self.starts: list[tuple[int, bool]] = []
        self.done = 0

    def start(self, *, total: int, done: int, resumed: bool) -> None:
        self.starts.append((done, resumed))
        self.done = done

    def advance(self, n: int) -> None:
        self.done += n


def _body(answers: list[requests.Response]) -> tuple[_Body, _Server, _Progress]:
    server = _Server(answers)
    api = Api("http://127.0.0.1:1", sleep=lambda _: None)
    api._session.request = server  # type: ignore[method-assign]
    progress = _Progress()
    return _Body(_Client(api), "/items/x/content", len(DATA), progress), server, progress  # type: ignore[arg-type]


def test_a_dropped_download_asks_for_the_rest_and_goes_on() -> None:
    body, server, progress = _body(
        [
            _answer(200, _Raw(DATA, cut=300), ETag='"tag"'),
            _answer(206, _Raw(DATA[300:], cut=200), **{"Content-Range": "bytes 300-1023/1024"}),
            _answer(206, _Raw(DATA[500:]), **{"Content-Range": "bytes 500-1023/1024"}),
        ]
    )
    assert b"".join(body.pieces()) == DATA
    assert [a.get("Range") for a in server.asked] == [None, "bytes=300-", "bytes=500-"]
    assert {a.get("If-Range") for a in server.asked[1:]} == {'"tag"'}
    assert progress.starts == [(0, False), (300, True), (500, True)]
    assert progress.done == len(DATA)


def test_a_file_that_changed_meanwhile_is_not_spliced() -> None:
    body, _, _ = _body(
        [
            _answer(200, _Raw(DATA, cut=300), ETag='"tag"'),
            _answer(200, _Raw(DATA), ETag='"other"'),  # If-Range failed: the whole file
        ]
    )
    with pytest.raises(ApiError, match="changed on the server"):
        b"".join(body.pieces())


def test_without_an_entity_tag_a_drop_is_an_error_not_a_traceback() -> None:
    body, _, _ = _body([_answer(200, _Raw(DATA, cut=300))])
    with pytest.raises(ApiError, match="the connection dropped during a download"):
        b"".join(body.pieces())
