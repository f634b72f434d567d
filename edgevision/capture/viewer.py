"""The live viewer (SHOW_VIDEO): a web page with the live frames, the current tag and probability drawn on
them (MJPEG), and the latest captured pictures.

It shows a public place, so beyond loopback it asks for VIEWER_KEY: a login page sets an HttpOnly cookie
(a token derived from the key, not the key), scripts send the key in `X-Viewer-Key`. Without a key the viewer
listens on loopback only (reach it over SSH port forwarding).

The frame loop only hands over references; drawing and JPEG encoding happen in the viewer's threads, once per
new frame however many browsers watch, and not at all when nobody does.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edgevision.capture.frames import encode_jpeg
from edgevision.capture.sources import Frame
from edgevision.contracts import ErrorBody, encode
from edgevision.errors import EdgeVisionError
from edgevision.keyguard import KeyGuard, refusal_message

if TYPE_CHECKING:
    from flask import Flask, Response

log = logging.getLogger(__name__)

BOUNDARY = "frame"
RECENT_CAPTURES = 8
KEY_HEADER = "X-Viewer-Key"
SESSION_COOKIE = "edgevision_viewer"
SESSION_DAYS = 30
LOOPBACK = "127.0.0.1"


class ViewerError(EdgeVisionError):
    """The viewer cannot listen (port in use, bad address)."""


def listen_host(host: str, key: str | None) -> str:
    """Where the viewer may listen: `host` with a key; without one, loopback only (said in the log)."""
    if _is_loopback(host):
        return host
    if key:
        log.info("live viewer open to the network on %s: VIEWER_KEY required", host)
        return host
    log.warning(
        "VIEWER_KEY is not set: the live viewer listens on loopback only (%s), not on VIEWER_HOST=%s;"
        " set VIEWER_KEY to open it to the network, or use SSH port forwarding (docs/capture.md)",
        LOOPBACK,
        host,
    )
    return LOOPBACK


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ViewerAuth:
    """Checks the key (header) or the session cookie, both in constant time."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()
        # The cookie holds a token derived from the key: a stolen cookie does not reveal the key.
        self.token = hmac.new(self._key, b"edgevision-viewer-session", hashlib.sha256).hexdigest()

    def key_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._key)

    def session_valid(self, cookies: Mapping[str, str]) -> bool:
        return hmac.compare_digest(cookies.get(SESSION_COOKIE, "").encode(), self.token.encode())


class LiveView:
    """The newest frame and its label, shared between the frame loop (writer) and the viewer (readers)."""

    def __init__(self, quality: int = 80) -> None:
        self.quality = quality
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._label = ""
        self._seq = 0
        self._encoded: tuple[int, bytes] | None = None
        self.tag = ""
        self.probability: float | None = None
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_CAPTURES)

    def update(self, frame: Frame, tag: str | None = None, probability: float | None = None) -> None:
        with self._cond:
            self._frame = frame
            if tag is not None:
                self.tag, self.probability = tag, probability
            self._label = f"{self.tag} {self.probability:.1%}" if self.tag and self.probability is not None else ""
            self._seq += 1
            self._cond.notify_all()

    @property
    def size(self) -> tuple[int, int]:
        """Width and height of the live frames (a guess until the first one)."""
        frame = self._frame
        return frame.size if frame is not None and frame.size[0] else (640, 480)

    def add_capture(self, url: str, tag: str, probability: float, captured_at: str) -> None:
        with self._cond:
            self.recent.appendleft({"url": url, "tag": tag, "probability": probability, "capturedAt": captured_at})

    def wait(self, after: int, timeout: float) -> tuple[int, bytes | None]:
        """The first frame newer than `after` as annotated JPEG, or (after, None) on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > after and self._frame is not None, timeout):
                return after, None
            return self._seq, self._jpeg_locked()

    def jpeg(self) -> bytes | None:
        with self._cond:
            return self._jpeg_locked() if self._frame is not None else None

    def _jpeg_locked(self) -> bytes:
        if self._encoded is None or self._encoded[0] != self._seq:
            assert self._frame is not None
            image = annotate(self._frame.pixels(), self._label)
            self._encoded = (self._seq, encode_jpeg(image, self.quality))
        return self._encoded[1]


def annotate(image: np.ndarray, label: str) -> np.ndarray:
    """A copy of `image` with `label` drawn top-left on a dark band, sized to the frame."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if not label:
        return out
    scale = max(0.5, out.shape[1] / 800)
    thickness = max(1, round(scale * 2))
    (width, height), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = round(8 * scale)
    cv2.rectangle(out, (0, 0), (width + 2 * pad, height + base + 2 * pad), (0, 0, 0), cv2.FILLED)
    cv2.putText(out, label, (pad, pad + height), cv2.FONT_HERSHEY_SIMPLEX, scale, (80, 255, 80), thickness, cv2.LINE_AA)
    return out


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgevision camera: {{ camera }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font-family: system-ui, sans-serif; margin: 1rem; background: #111; color: #eee; }
 #live { max-width: 100%; background: #222; min-width: 320px; min-height: 240px; display: block; }
 #tag { font-size: 1.6rem; margin: .5rem 0; }
 #captures { display: flex; flex-wrap: wrap; gap: .5rem; }
 figure { margin: 0; } figure img { height: 120px; display: block; }
 figcaption, #stats { font-size: .85rem; color: #aaa; }
</style></head>
<body>
<h1>{{ camera }}</h1>
<img id="live" alt="live video" width="{{ width }}" height="{{ height }}" src="/frame.jpg">
<div id="tag">{{ label }}</div>
<div id="stats">{{ stats }}</div>
<h2>Latest captures</h2>
<div id="captures">{% for c in captures %}<figure><img src="{{ c.url }}" alt="{{ c.tag }}">
<figcaption>{{ c.tag }} {{ '%.1f' % (c.probability * 100) }}% · {{ c.capturedAt }}</figcaption></figure>
{% else %}<p id="no-captures">none yet</p>{% endfor %}</div>
<script>
// Start the never-ending MJPEG stream only after the page has loaded, so "load" still fires.
window.addEventListener("load", () => { document.getElementById("live").src = "/video.mjpg"; });
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]));
async function refresh() {
  try {
    const s = await (await fetch("/api/status")).json();
    document.getElementById("tag").textContent = s.label;
    document.getElementById("stats").textContent = s.summary;
    if (s.captures.length) {
      document.getElementById("captures").innerHTML = s.captures.map((c) =>
        `<figure><img src="${esc(c.url)}" alt="${esc(c.tag)}"><figcaption>${esc(c.tag)} ` +
        `${(c.probability * 100).toFixed(1)}% · ${esc(c.capturedAt)}</figcaption></figure>`).join("");
    }
  } catch (e) { /* the module restarts: keep the last view */ }
}
setInterval(refresh, 1000);
</script>
</body></html>
"""


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgevision camera: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body { font-family: system-ui, sans-serif; margin: 2rem; background: #111; color: #eee; }</style></head>
<body><h1>Live viewer</h1>
<form method="post" action="/login"><label>Viewer key <input type="password" name="key" autofocus required></label>
<button type="submit">Open</button></form>
{% if message %}<p id="wrong">{{ message }}</p>{% endif %}
</body></html>
"""


def create_app(
    view: LiveView,
    status: Callable[[], dict[str, Any]],
    capture_root: Callable[[], Path],
    key: str | None = None,
) -> Flask:
    """The viewer application: `/`, `/video.mjpg`, `/frame.jpg`, `/api/status`, `/metrics`, `/captures/<file>`, and with
    a `key` `/login`; every other page then answers 401 without the key or the session cookie."""
    from flask import Flask, Response, jsonify, render_template_string, send_from_directory  # only with SHOW_VIDEO

    app = Flask(__name__)
    if key:
        _require_key(app, ViewerAuth(key))

    def snapshot() -> dict[str, Any]:
        data = status()
        label = f"{view.tag} {view.probability:.1%}" if view.tag and view.probability is not None else "no result yet"
        data["label"] = label
        data["tag"] = view.tag
        data["probability"] = view.probability
        data["captures"] = list(view.recent)
        return data

    @app.get("/")
    def index() -> str:
        data = snapshot()
        width, height = view.size
        return render_template_string(
            PAGE,
            camera=data.get("source", ""),
            label=data["label"],
            stats=data.get("summary", ""),
            captures=data["captures"],
            width=width,
            height=height,
        )

    @app.get("/api/status")
    def api_status() -> Response:
        return jsonify(snapshot())

    @app.get("/frame.jpg")
    def frame() -> Response:
        data = view.jpeg()
        if data is None:
            return Response(status=204)
        return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/video.mjpg")
    def video() -> Response:
        return Response(
            _mjpeg(view),
            mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(prometheus_text(status()), mimetype="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/captures/<path:name>")
    def captured(name: str) -> Response | tuple[Response, int]:
        if not name.endswith((".jpg", ".json")) or any(part.startswith(".") for part in name.split("/")):
            return jsonify(encode(ErrorBody(code="NotFound", message="no such capture"))), 404  # e.g. the journal
        return send_from_directory(capture_root(), name, max_age=3600)

    @app.errorhandler(404)
    def not_found(_: Exception) -> tuple[Response, int]:
        return jsonify(encode(ErrorBody(code="NotFound", message="no such page"))), 404

    return app


def prometheus_text(status: Mapping[str, Any]) -> str:
    """The status counters in Prometheus' text format: `edgevision_camera_<stat>`, and the upload state as a
    labelled 1 (`edgevision_camera_upload_state{state="unreachable"} 1`)."""
    lines = []
    for name, value in sorted((status.get("stats") or {}).items()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            metric = "edgevision_camera_" + "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
            lines += [f"# TYPE {metric} gauge", f"{metric} {value}"]
    state = str(status.get("uploadState", "off")).replace('"', "")
    lines += ["# TYPE edgevision_camera_upload_state gauge", f'edgevision_camera_upload_state{{state="{state}"}} 1']
    return "\n".join(lines) + "\n"


def _require_key(app: Flask, auth: ViewerAuth) -> None:
    from flask import Response, jsonify, redirect, render_template_string, request

    guard = KeyGuard()  # an address that keeps giving wrong keys waits (edgevision.keyguard)

    def login_page(message: str = "", status: int = 401) -> Response:
        page = render_template_string(LOGIN_PAGE, message=message)
        return Response(page, status=status, mimetype="text/html")

    def refused(wait: int) -> Response:
        if request.path == "/login":
            response = login_page(refusal_message(wait).capitalize() + ".", status=429)
        else:
            response = jsonify(encode(ErrorBody(code="TooManyRequests", message=refusal_message(wait))))
            response.status_code = 429
        response.headers["Retry-After"] = str(wait)
        return response

    def key_given(given: str) -> bool:
        if auth.key_matches(given):
            guard.succeeded(request.remote_addr)
            return True
        guard.failed(request.remote_addr)
        return False

    @app.before_request
    def check() -> Response | tuple[Response, int] | None:
        giving_key = KEY_HEADER in request.headers or (request.path == "/login" and request.method == "POST")
        wait = guard.retry_after(request.remote_addr) if giving_key else None
        if wait is not None:
            return refused(wait)
        if request.path == "/login":
            return None
        if KEY_HEADER in request.headers:
            if key_given(request.headers[KEY_HEADER]):
                return None
            return jsonify(encode(ErrorBody(code="Unauthorized", message="the viewer key is wrong"))), 401
        if auth.session_valid(request.cookies):
            return None
        if request.path == "/":
            return login_page()
        message = f"the viewer key is missing: log in at /login or send {KEY_HEADER}"
        return jsonify(encode(ErrorBody(code="Unauthorized", message=message))), 401

    @app.get("/login")
    def login_form() -> Response:
        return login_page()

    @app.post("/login")
    def login() -> Response:
        if not key_given(request.form.get("key", "")):
            return login_page("Wrong key.")
        response = redirect("/", code=303)
        response.set_cookie(
            SESSION_COOKIE, auth.token, max_age=SESSION_DAYS * 86400, httponly=True, samesite="Strict", path="/"
        )
        return response


def _mjpeg(view: LiveView) -> Iterator[bytes]:
    seq = 0
    last_sent = time.monotonic()
    while True:
        seq, data = view.wait(seq, timeout=5.0)
        if data is None:
            if time.monotonic() - last_sent < 30:
                continue
            data = view.jpeg()  # a paused source: resend now and then so proxies keep the stream open
            if data is None:
                continue
        last_sent = time.monotonic()
        yield (
            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data + b"\r\n"
        )


class ViewerServer:
    """The viewer on waitress in a daemon thread."""

    def __init__(self, app: Flask, host: str, port: int) -> None:
        from waitress.server import create_server

        self._map: dict[int, Any] = {}  # our own socket map, so close() can end open MJPEG streams too
        try:
            self._server = create_server(
                app, map=self._map, host=host, port=port, threads=8, ident="edgevision-capture"
            )
        except OSError as exc:
            raise ViewerError(f"VIEWER_PORT: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.port = port
        self._thread = threading.Thread(target=self._serve, name="capture-viewer", daemon=True)
        self._thread.start()
        log.info("live viewer on http://%s:%d/", "localhost" if host in {"0.0.0.0", "::"} else host, port)

    def _serve(self) -> None:
        try:
            self._server.run()
        except Exception as exc:  # closing the sockets under the loop ends it this way
            log.debug("viewer stopped: %s", exc)

    def close(self) -> None:
        self._server.close()
        for channel in list(self._map.values()):  # open streams and the loop's trigger: the loop then ends
            with contextlib.suppress(Exception):
                channel.close()
        self._server.task_dispatcher.shutdown(timeout=1)
        self._thread.join(2)
