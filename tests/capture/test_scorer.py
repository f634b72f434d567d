"""The camera's scorer client: real answers parsed, and every way a scorer can fail turned into one error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from edgevision.capture.scorer import Backoff, ScorerClient, ScorerError
from tests.capture.conftest import DOG
from tests.conftest import ScoringService, free_port


def test_a_real_answer_is_sorted_and_carries_the_model_id(scoring_service: ScoringService, model_id: str) -> None:
    client = ScorerClient(f"{scoring_service.url}/image", params={"application": "camera"}, timeout=30)
    scored = client.score(DOG.read_bytes())
    client.close()
    probabilities = [p["probability"] for p in scored.predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert scored.top["tagName"] == "malamute"
    assert scored.model_id == model_id
    assert set(scored.response) >= {"id", "project", "iteration", "created", "predictions"}


class Misbehaving(BaseHTTPRequestHandler):
    """A scorer gone wrong, chosen by path."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body, kind = {
            "/html": (200, b"<html>proxy login</html>", "text/html"),
            "/crash": (500, b'{"code": "Internal", "message": "model exploded"}', "application/json"),
            "/reject": (400, b'{"code": "BadRequest", "message": "not an image"}', "application/json"),
            "/shape": (200, b'{"predictions": [{"tag": "x"}]}', "application/json"),
        }.get(self.path, (404, b"", "text/plain"))
        if self.path == "/slow":
            time.sleep(1.5)
            status, body, kind = 200, b'{"predictions": []}', "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # /slow: the client gave up, as it should

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def bad_scorer() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("path", "transient", "message"),
    [
        ("/html", True, "not a prediction response"),
        ("/shape", True, "not a prediction response"),
        ("/crash", True, "HTTP 500: model exploded"),
        ("/reject", False, "HTTP 400: not an image"),
        ("/slow", True, "REQUEST_TIMEOUT"),
    ],
)
def test_a_misbehaving_scorer_is_one_error(bad_scorer: str, path: str, transient: bool, message: str) -> None:
    client = ScorerClient(bad_scorer + path, timeout=0.5)
    with pytest.raises(ScorerError, match=message) as caught:
        client.score(b"\xff\xd8 not really a jpeg \xff\xd9")
    assert caught.value.transient is transient


def test_an_unreachable_scorer_is_a_transient_error() -> None:
    client = ScorerClient(f"http://127.0.0.1:{free_port()}/image", timeout=1)
    with pytest.raises(ScorerError, match="cannot reach") as caught:
        client.score(DOG.read_bytes())
    assert caught.value.transient


def test_backoff_doubles_up_to_its_maximum_and_resets() -> None:
    backoff = Backoff(maximum=3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5
