"""The IoT Edge workload API on a unix socket: what `ModuleClient.create_from_edge_environment()` calls.

- `GET /trust-bundle` -> the run's CA certificate (the module trusts the broker with it);
- `POST /modules/<module>/genid/<genid>/sign` -> HMAC-SHA256 of the data with the module's key (its SAS token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import socketserver
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

API_VERSION = "2019-01-30"
_SIGN = re.compile(r"^/modules/(?P<module>[^/]+)/genid/(?P<genid>[^/]+)/sign$")


class WorkloadAPI:
    """A threaded HTTP server on `socket_path`; modules are added with their generation id and key."""

    def __init__(self, socket_path: Path, ca_pem: str, mode: int = 0o600) -> None:
        self.socket_path = socket_path
        self.ca_pem = ca_pem
        self.mode = mode  # 0o666 when containers, whose users are not the runtime's, connect to it
        self.identities: dict[str, tuple[str, bytes]] = {}  # module -> (generation id, key)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def uri(self) -> str:
        return f"unix://{self.socket_path}"

    def add_module(self, module: str) -> str:
        """Register `module`; returns its generation id."""
        generation = secrets.token_hex(8)
        self.identities[module] = (generation, secrets.token_bytes(32))
        return generation

    def start(self) -> None:
        if self.socket_path.exists():
            self.socket_path.unlink()
        self._server = _Server(str(self.socket_path), _Handler)
        self._server.api = self
        os.chmod(self.socket_path, self.mode)
        self._thread = threading.Thread(target=self._server.serve_forever, name="workload-api", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.socket_path.exists():
            self.socket_path.unlink()

    def sign(self, module: str, generation: str, data: str) -> str | None:
        identity = self.identities.get(module)
        if identity is None or identity[0] != generation:
            return None
        digest = hmac.new(identity[1], base64.b64decode(data), hashlib.sha256).digest()
        return base64.b64encode(digest).decode("ascii")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    api: WorkloadAPI


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def address_string(self) -> str:  # unix sockets have no peer address
        return "workload"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("workload API: " + format, *args)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/trust-bundle":
            self._reply(200, {"certificate": self.server.api.ca_pem})
        else:
            self._reply(404, {"message": f"no such workload API call: GET {self.path}"})

    def do_POST(self) -> None:
        match = _SIGN.match(self.path.split("?", 1)[0])
        if not match:
            self._reply(404, {"message": f"no such workload API call: POST {self.path}"})
            return
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            data = request["data"]
            if request.get("algo", "HMACSHA256") != "HMACSHA256":
                raise ValueError("only HMACSHA256 is supported")
            digest = self.server.api.sign(match["module"], match["genid"], data)
        except (KeyError, ValueError, TypeError) as exc:
            self._reply(400, {"message": f"bad sign request: {exc}"})
            return
        if digest is None:
            self._reply(404, {"message": f"unknown module {match['module']} or generation id"})
        else:
            self._reply(200, {"digest": digest})

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
