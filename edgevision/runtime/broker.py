"""Mosquitto brokers: one per module, each on its own loopback address and port 8883 with TLS.

Why one per module: IoT Hub's twin topics (`$iothub/twin/...`) carry no module identity; edgeHub tells
modules apart by their connection. One broker per module gives the runtime the same knowledge (whatever
arrives on a module's broker comes from that module; whatever is published there reaches only it).
Mosquitto's `mount_point` would do it with one process, but 2.0.11 (Debian 12) does not strip the mount
point from topics it delivers, so the SDK would not recognise its own twin responses.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from edgevision.errors import EdgeVisionError
from edgevision.runtime.certs import Certificates
from edgevision.runtime.modules import die_with_parent

log = logging.getLogger(__name__)

MQTT_TLS_PORT = 8883  # the SDK always connects here (443 only with websockets)
INSTALL_HINT = "install it with scripts/setup.sh (or: sudo apt-get install -y mosquitto)"


class BrokerError(EdgeVisionError):
    """Mosquitto is missing or does not start."""


def find_mosquitto(environ: Mapping[str, str] | None = None) -> str:
    """The mosquitto executable (EDGEVISION_MOSQUITTO, PATH, /usr/sbin); BrokerError naming the install command."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("EDGEVISION_MOSQUITTO")
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        raise BrokerError(f"mosquitto not found at EDGEVISION_MOSQUITTO={explicit}: {INSTALL_HINT}")
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )
    if not found:
        raise BrokerError(f"mosquitto is not installed: {INSTALL_HINT}")
    return found


def free_addresses(count: int, port: int = MQTT_TLS_PORT) -> list[str]:
    """`count` random 127.0.0.N addresses whose `port` is free, so runs side by side never collide."""
    candidates = [f"127.0.0.{n}" for n in range(2, 255)]
    random.shuffle(candidates)
    chosen = [a for a in candidates if _port_free(a, port)][:count]
    if len(chosen) < count:
        raise BrokerError(
            f"port {port} is taken on the loopback addresses 127.0.0.2-254 (another MQTT broker listening on"
            f" 0.0.0.0:{port}?): stop it, or bind it to one address"
        )
    return chosen


def _port_free(address: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


class ModuleBroker:
    """A mosquitto process serving one module on `address`:8883 (TLS, loopback only)."""

    def __init__(self, module: str, address: str, certs: Certificates, folder: Path, log_path: Path, executable: str):
        self.module = module
        self.address = address
        self.certs = certs
        self.folder = folder
        self.log_path = log_path
        self.executable = executable
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def config(self) -> str:
        # Persistence keeps the modules' sessions (the SDK connects with clean_session=False and never
        # re-subscribes), so they survive a broker restart as they survive an edgeHub restart.
        # Started as root, mosquitto drops to the `mosquitto` user, which cannot read certificates in a 0700
        # folder; staying root is no wider than the runtime itself (and the listener is loopback only).
        user = ["user root"] if os.geteuid() == 0 else []
        return "\n".join(
            [
                *user,
                "per_listener_settings false",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {self.folder}/",
                "autosave_interval 1",
                "autosave_on_changes true",
                "max_queued_messages 1000",
                "log_dest stdout",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                f"listener {MQTT_TLS_PORT} {self.address}",
                f"cafile {self.certs.ca}",
                f"certfile {self.certs.cert}",
                f"keyfile {self.certs.key}",
                "",
            ]
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        conf = self.folder / "mosquitto.conf"
        conf.write_text(self.config(), encoding="utf-8")
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [self.executable, "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,  # calls one preloaded C function: safe with threads
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise BrokerError(
                    f"mosquitto for {self.module} exited with {self.process.returncode}: {' | '.join(tail)}"
                )
            try:
                with socket.create_connection((self.address, MQTT_TLS_PORT), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(
            f"mosquitto for {self.module} did not listen on {self.address}:{MQTT_TLS_PORT} within {timeout} s"
        )

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # mosquitto saves its persistence file on SIGTERM
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
