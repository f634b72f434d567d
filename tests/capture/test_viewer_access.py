"""Who may watch the live viewer: without VIEWER_KEY it listens on loopback only (and says so); with a key,
every page and the stream answer 401 until the key is sent (`X-Viewer-Key`) or a login set the session cookie."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from edgevision.capture.viewer import KEY_HEADER, SESSION_COOKIE
from edgevision.demo.slideshow import Slideshow
from edgevision.keyguard import ATTEMPTS, WINDOW_SECONDS
from tests.capture.conftest import ModuleProcess
from tests.conftest import free_port, wait_until

KEY = "park-cam-viewer-key"
PAGES = ("/", "/api/status", "/frame.jpg", "/video.mjpg", "/captures/none.jpg")


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port`, from /proc/net/tcp{,6} (no traffic needed)."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # little-endian words
                found.add(socket.inet_ntop(family, words))
    return found


def answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2, stream=True).close()
        return True
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def start_viewer(slideshow: Slideshow, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., tuple]]:
    started: list[ModuleProcess] = []

    def start(**env: str) -> tuple[ModuleProcess, int]:
        port = free_port()
        folder = tmp_path_factory.mktemp("viewer-access")
        module = ModuleProcess(
            {"VIDEO_PATH": str(slideshow), "SHOW_VIDEO": "true", "VIEWER_PORT": str(port), **env},
            folder / "module.log",
        )
        started.append(module)
        wait_until(lambda: listening_addresses(port) or not module.alive(), 60, "the viewer listening")
        assert module.alive(), module.log
        return module, port

    yield start
    for module in started:
        module.stop()


@pytest.fixture(scope="module")
def keyed(start_viewer) -> str:
    """A viewer with a key, listening on every address (it is only ever contacted on loopback)."""
    _, port = start_viewer(VIEWER_HOST="0.0.0.0", VIEWER_KEY=KEY)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers(url), 30, "the keyed viewer answering")
    return url


def test_without_a_key_it_listens_on_loopback_only_and_says_so(start_viewer) -> None:
    module, port = start_viewer(VIEWER_HOST="0.0.0.0")
    assert listening_addresses(port) == {"127.0.0.1"}
    assert "VIEWER_KEY is not set: the live viewer listens on loopback only" in module.log
    response = requests.get(f"http://127.0.0.1:{port}/api/status", timeout=10)
    assert response.status_code == 200  # no key asked on loopback


def test_with_a_key_it_listens_where_asked(keyed: str) -> None:
    port = int(keyed.rsplit(":", 1)[1])
    assert listening_addresses(port) == {"0.0.0.0"}


@pytest.mark.parametrize("page", PAGES)
def test_every_page_is_401_without_the_key(keyed: str, page: str) -> None:
    response = requests.get(f"{keyed}{page}", timeout=10)
    assert response.status_code == 401
    if page == "/":
        assert 'name="key"' in response.text and 'action="/login"' in response.text  # the login page
    else:
        assert response.json()["code"] == "Unauthorized"
    wrong = requests.get(f"{keyed}{page}", headers={KEY_HEADER: KEY + "x"}, timeout=10)
    assert wrong.status_code == 401 and wrong.json()["code"] == "Unauthorized"


def test_the_key_header_opens_every_page(keyed: str) -> None:
    headers = {KEY_HEADER: KEY}
    assert requests.get(f"{keyed}/", headers=headers, timeout=10).status_code == 200
    assert requests.get(f"{keyed}/api/status", headers=headers, timeout=10).json()["source"]
    wait_until(
        lambda: requests.get(f"{keyed}/frame.jpg", headers=headers, timeout=10).status_code == 200, 30, "a frame"
    )
    with requests.get(f"{keyed}/video.mjpg", headers=headers, timeout=10, stream=True) as stream:
        assert stream.status_code == 200
        assert b"Content-Type: image/jpeg" in next(stream.iter_content(4096))


def test_login_sets_an_httponly_session_cookie(keyed: str) -> None:
    with requests.Session() as browser:
        refused = browser.post(f"{keyed}/login", data={"key": "guess"}, allow_redirects=False, timeout=10)
        assert refused.status_code == 401 and 'id="wrong"' in refused.text
        assert SESSION_COOKIE not in browser.cookies

        response = browser.post(f"{keyed}/login", data={"key": KEY}, allow_redirects=False, timeout=10)
        assert response.status_code == 303 and response.headers["Location"].endswith("/")
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert KEY not in cookie  # the cookie holds a derived token, not the key
        assert browser.get(f"{keyed}/", timeout=10).status_code == 200
        assert browser.get(f"{keyed}/api/status", timeout=10).status_code == 200

    forged = requests.get(f"{keyed}/api/status", cookies={SESSION_COOKIE: "0" * 64}, timeout=10)
    assert forged.status_code == 401


def test_wrong_keys_lock_the_address_out_even_for_the_right_key(start_viewer) -> None:
    _, port = start_viewer(VIEWER_KEY=KEY)  # a viewer of its own: the refusals would reach the other tests
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers(url), 30, "the keyed viewer answering")
    for _ in range(ATTEMPTS // 2):
        assert requests.post(f"{url}/login", data={"key": "guess"}, timeout=10).status_code == 401
    for _ in range(ATTEMPTS - ATTEMPTS // 2):
        assert requests.get(f"{url}/api/status", headers={KEY_HEADER: "guess"}, timeout=10).status_code == 401

    page = requests.post(f"{url}/login", data={"key": KEY}, allow_redirects=False, timeout=10)
    assert page.status_code == 429 and "Too many wrong keys from this address" in page.text
    assert SESSION_COOKIE not in page.cookies
    api = requests.get(f"{url}/api/status", headers={KEY_HEADER: KEY}, timeout=10)
    assert api.status_code == 429 and api.json()["code"] == "TooManyRequests"
    assert 0 < int(api.headers["Retry-After"]) <= WINDOW_SECONDS
    assert requests.get(f"{url}/login", timeout=10).status_code == 401  # the form itself still shows
