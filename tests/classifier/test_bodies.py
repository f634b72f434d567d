"""Bodies far over MAX_IMAGE_BYTES get the same 413 JSON answer as those just over it, up to a 64 MB cap,
and are dropped as they arrive (never kept in memory or spooled); beyond the cap waitress refuses them."""

from __future__ import annotations

import json
import socket

import pytest
import requests
from waitress.adjustments import Adjustments

from edgevision.classifier.bodies import DISCARD_CAP, channel_class_for
from tests.classifier.test_bad_input import OCTET, assert_error, assert_still_serving

MB = 1024 * 1024


@pytest.mark.parametrize("size_mb", [9, 30])
def test_large_raw_body_is_answered_413_json(service, http: requests.Session, size_mb: int) -> None:
    response = http.post(f"{service.url}/image", data=b"\xab" * (size_mb * MB), headers=OCTET)
    assert_error(response, 413, "BadRequestImageSizeBytes")
    assert "4,194,304" in response.json()["message"]
    assert_still_serving(service, http)


@pytest.mark.parametrize("size_mb", [9, 30])
def test_large_multipart_body_is_answered_413_json(service, http: requests.Session, size_mb: int) -> None:
    response = http.post(f"{service.url}/image", files={"imageData": ("big.jpg", b"\xcd" * (size_mb * MB))})
    assert_error(response, 413, "BadRequestImageSizeBytes")
    assert_still_serving(service, http)


def test_large_url_body_is_answered_413_json(service, http: requests.Session) -> None:
    body = b'{"url": "' + b"a" * (9 * MB) + b'"}'
    response = http.post(f"{service.url}/url", data=body, headers={"Content-Type": "application/json"})
    assert_error(response, 413, "BadRequestImageSizeBytes")


def test_the_connection_serves_the_next_request(service) -> None:
    """The discarded body is consumed exactly: the same keep-alive connection answers a second request."""
    with requests.Session() as session:
        assert_error(
            session.post(f"{service.url}/image", data=b"\0" * (9 * MB), headers=OCTET), 413, "BadRequestImageSizeBytes"
        )
        assert_still_serving(service, session)


def test_body_over_the_cap_is_refused_with_json_before_it_is_sent(service) -> None:
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        head = (
            "POST /image HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {DISCARD_CAP + 1}\r\n\r\n"
        )
        sock.sendall(head.encode())  # no body: waitress answers from the header alone
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status_line.startswith(b"HTTP/1.1 413")
    assert b"application/json" in headers.lower()
    assert json.loads(body)["code"] == "BadRequestImageSizeBytes"


def test_parser_keeps_nothing_of_a_discarded_body() -> None:
    """The real waitress parser, fed a 30 MB body in socket-sized chunks, holds none of it."""
    adj = Adjustments(max_request_body_size=DISCARD_CAP + 1)
    parser = channel_class_for(4 * MB).parser_class(adj)
    size = 30 * MB
    parser.received(f"POST /image HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
    chunk = b"\0" * 65536
    for _ in range(size // len(chunk)):
        parser.received(chunk)
        assert len(parser.body_rcv.getbuf()) == 0
    assert parser.completed and parser.error is None
    assert parser.body_rcv.getbuf().discarded == size
    assert parser.get_body_stream().read() == b""


def test_parser_keeps_bodies_within_the_limit() -> None:
    parser = channel_class_for(4 * MB).parser_class(Adjustments(max_request_body_size=DISCARD_CAP + 1))
    data = b"POST /image HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    while data and not parser.completed:  # as waitress' channel does: each call consumes what it can
        data = data[parser.received(data) :]
    assert parser.completed and parser.get_body_stream().read() == b"hello"
