"""Hub clients. Sending never blocks the caller: messages go through a bounded queue to a sender thread that
waits out reconnects (the ModuleClient retries its connection itself) and drops the oldest when full."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgevision.errors import EdgeVisionError

log = logging.getLogger(__name__)

# create_from_edge_environment() needs all of these; otherwise it falls back to a connection string.
EDGE_VARIABLES = (
    "IOTEDGE_IOTHUBHOSTNAME",
    "IOTEDGE_DEVICEID",
    "IOTEDGE_MODULEID",
    "IOTEDGE_GATEWAYHOSTNAME",
    "IOTEDGE_MODULEGENERATIONID",
    "IOTEDGE_WORKLOADURI",
    "IOTEDGE_APIVERSION",
)
CONNECTION_STRING_VARIABLES = ("EdgeHubConnectionString", "EdgeModuleCACertificateFile")


class HubError(EdgeVisionError):
    """The module cannot reach IoT Edge (bad environment, unreachable hub at start-up)."""


@dataclass
class InputMessage:
    """A message that arrived on one of the module's inputs."""

    input_name: str
    body: bytes
    properties: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    message_id: str | None = None

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not UTF-8 JSON."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(f"body is not UTF-8: {exc}") from None


InputHandler = Callable[[InputMessage], None]
DesiredHandler = Callable[[dict[str, Any]], None]


class Hub(ABC):
    """What a module may do with IoT Edge."""

    sent = 0
    dropped = 0

    @abstractmethod
    def send(self, output: str, body: Any, properties: Mapping[str, Any] | None = None) -> None:
        """Queue `body` (JSON-encoded unless bytes/str) for `output` with custom `properties`."""

    @abstractmethod
    def on_input(self, handler: InputHandler) -> None:
        """Call `handler` for every message on any input of this module."""

    @abstractmethod
    def on_desired(self, handler: DesiredHandler) -> None:
        """Call `handler` with each desired-properties patch (twin metadata keys removed)."""

    @abstractmethod
    def desired(self) -> dict[str, Any]:
        """The twin's current desired properties (empty when there is no twin)."""

    @abstractmethod
    def report(self, properties: Mapping[str, Any]) -> None:
        """Patch the twin's reported properties."""

    def close(self) -> None:  # noqa: B027 - optional for hubs without resources
        """Flush what can be flushed and disconnect."""

    @property
    def is_edge(self) -> bool:
        return False

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalHub(Hub):
    """No IoT Edge around: log what would be sent, no inputs, no twin."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.reported_properties: dict[str, Any] = {}

    def send(self, output: str, body: Any, properties: Mapping[str, Any] | None = None) -> None:
        self.sent += 1
        text = body if isinstance(body, str) else _encode(body).decode("utf-8", "replace")
        log.info("%s -> %s %s %s", self.module, output, dict(properties or {}), text[:300])

    def on_input(self, handler: InputHandler) -> None:
        log.info("%s: not running under IoT Edge: no input messages will arrive", self.module)

    def on_desired(self, handler: DesiredHandler) -> None:
        pass

    def desired(self) -> dict[str, Any]:
        return {}

    def report(self, properties: Mapping[str, Any]) -> None:
        self.reported_properties.update(properties)
        log.info("%s reported %s", self.module, json.dumps(dict(properties), default=str)[:500])


class EdgeHub(Hub):
    """A real azure-iot-device ModuleClient, created from the IoT Edge environment."""

    def __init__(self, module: str, client: Any, *, queue_size: int = 1000) -> None:
        self.module = module
        self._client = client
        self._queue: queue.Queue[tuple[str, bytes, dict[str, str]] | None] = queue.Queue(queue_size)
        self._sender = threading.Thread(target=self._send_loop, name=f"{module}-hub-sender", daemon=True)
        self._sender.start()

    @classmethod
    def from_environment(cls, module: str) -> EdgeHub:
        from azure.iot.device import IoTHubModuleClient

        sdk_log = logging.getLogger("azure.iot.device")
        if sdk_log.level == logging.NOTSET and not log.isEnabledFor(logging.DEBUG):
            sdk_log.setLevel(logging.WARNING)  # the SDK logs every publish at INFO; keep it for -v

        try:
            client = IoTHubModuleClient.create_from_edge_environment()
        except Exception as exc:  # the SDK raises several types for a bad environment
            raise HubError(f"cannot create the IoT Edge module client: {exc}") from None
        return cls(module, client)

    @property
    def is_edge(self) -> bool:
        return True

    def send(self, output: str, body: Any, properties: Mapping[str, Any] | None = None) -> None:
        item = (output, _encode(body), {str(k): str(v) for k, v in (properties or {}).items()})
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()  # the newest news matters most: drop the oldest
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _send_loop(self) -> None:
        from azure.iot.device import Message

        while (item := self._queue.get()) is not None:
            output, body, properties = item
            message = Message(body, content_encoding="utf-8", content_type="application/json")
            message.custom_properties.update(properties)
            try:
                self._client.send_message_to_output(message, output)
                self.sent += 1
            except Exception as exc:  # the SDK retries connections; a failure here loses one message
                self.dropped += 1
                log.warning("%s: message to %s not sent: %s", self.module, output, exc)

    def on_input(self, handler: InputHandler) -> None:
        def receive(message: Any) -> None:
            data = message.data if isinstance(message.data, bytes) else str(message.data).encode()
            incoming = InputMessage(
                input_name=message.input_name or "",
                body=data,
                properties=dict(message.custom_properties or {}),
                content_type=message.content_type,
                message_id=message.message_id,
            )
            try:
                handler(incoming)
            except Exception:  # a handler bug must not kill the SDK's receive thread
                log.exception("%s: input handler failed", self.module)

        self._client.on_message_received = receive

    def on_desired(self, handler: DesiredHandler) -> None:
        def patched(patch: dict[str, Any]) -> None:
            try:
                handler(_without_metadata(patch))
            except Exception:
                log.exception("%s: desired-properties handler failed", self.module)

        self._client.on_twin_desired_properties_patch_received = patched

    def desired(self) -> dict[str, Any]:
        try:
            twin = self._client.get_twin()
        except Exception as exc:
            log.warning("%s: cannot read the module twin: %s", self.module, exc)
            return {}
        return _without_metadata(twin.get("desired", {}))

    def report(self, properties: Mapping[str, Any]) -> None:
        try:
            self._client.patch_twin_reported_properties(json.loads(json.dumps(dict(properties), default=str)))
        except Exception as exc:
            log.warning("%s: reported properties not sent: %s", self.module, exc)

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._sender.join(timeout)
        try:
            self._client.shutdown()
        except Exception as exc:
            log.debug("%s: shutdown: %s", self.module, exc)


def edge_environment(environ: Mapping[str, str] | None = None) -> bool:
    """True when the process runs under IoT Edge (or the local edge runtime)."""
    environ = os.environ if environ is None else environ
    return all(environ.get(v) for v in EDGE_VARIABLES) or all(environ.get(v) for v in CONNECTION_STRING_VARIABLES)


def connect(module: str, environ: Mapping[str, str] | None = None) -> Hub:
    """The hub for this process: IoT Edge when its variables are set, else a LocalHub that logs."""
    if edge_environment(environ):
        hub: Hub = EdgeHub.from_environment(module)
        log.info("%s: connected to IoT Edge as module %s", module, os.environ.get("IOTEDGE_MODULEID", module))
        return hub
    log.info("%s: no IoT Edge environment (IOTEDGE_* variables): results are logged, not sent", module)
    return LocalHub(module)


def _encode(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, separators=(",", ":"), default=str).encode("utf-8")


def _without_metadata(properties: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in properties.items() if not str(k).startswith("$")}
