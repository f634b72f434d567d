"""The runtime's edgeHub: an MQTT client on every module's broker that routes messages and serves twins.

- `devices/<d>/modules/<m>/messages/events/<props>` (a module's output) -> the routes -> each sink once:
  `devices/<d>/modules/<x>/inputs/<i>/<props>` on module x's broker, or the upstream log;
- `$iothub/twin/GET/?$rid=R` -> `$iothub/twin/res/200/?$rid=R` with the twin document;
- `$iothub/twin/PATCH/properties/reported/?$rid=R` -> recorded, `$iothub/twin/res/204/?$rid=R&$version=V`;
- desired-property changes -> `$iothub/twin/PATCH/properties/desired/?$version=V`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edgevision.contracts import CAMERA_OUTPUTS, CameraResult, CaptureEvent, ContractError, parse
from edgevision.runtime.broker import MQTT_TLS_PORT
from edgevision.runtime.console import Console
from edgevision.runtime.routes import UNDEFINED, Message, Route, Sink
from edgevision.runtime.twins import TwinStore

log = logging.getLogger(__name__)

EVENTS = "devices/+/modules/+/messages/events/#"
TWIN_GET = "$iothub/twin/GET/#"
TWIN_REPORTED = "$iothub/twin/PATCH/properties/reported/#"
# MQTT topic property names <-> IoT Hub system properties (what routes call $contentType, ...).
SYSTEM_KEYS = {
    "$.mid": "messageId",
    "$.cid": "correlationId",
    "$.uid": "userId",
    "$.ct": "contentType",
    "$.ce": "contentEncoding",
}


def parse_properties(encoded: str) -> dict[str, str]:
    """`k=v&k2=v2` URL-encoded as the SDK writes it (never `+` for space)."""
    properties: dict[str, str] = {}
    for pair in encoded.split("&") if encoded else []:
        key, _, value = pair.partition("=")
        if key:
            properties[urllib.parse.unquote(key)] = urllib.parse.unquote(value)
    return properties


def encode_properties(properties: dict[str, str]) -> str:
    return "&".join(f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}" for k, v in properties.items())


class UpstreamLog:
    """`$upstream`: one JSON line per message in `path`, and a one-line summary on the console.

    The camera's outputs are read as their contracts; one that does not match is still recorded (IoT Hub would
    store it too) but marked `rejected` with the reason, counted in `rejected` and logged."""

    def __init__(self, path: Path, console: Console) -> None:
        self.path = path
        self.console = console
        self.counts: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def append(self, message: Message, routes: list[str]) -> None:
        body = message.json_body()
        record: dict[str, Any] = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
            "module": message.module,
            "output": message.output,
            "routes": routes,
            "system": dict(message.system),
            "properties": dict(message.properties),
        }
        if body is not UNDEFINED:
            record["body"] = body
        else:
            try:
                record["body"] = message.body.decode("utf-8")
            except UnicodeDecodeError:
                record["bodyBase64"] = base64.b64encode(message.body).decode("ascii")
        name = f"{message.module}/{message.output}"
        try:
            summary = _summary(message, body)
        except ContractError as exc:
            record["rejected"] = summary = f"rejected: {exc}"
            log.warning("upstream: %s sent a message that is %s", name, exc)
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record, default=str) + "\n")
            self.counts[name] += 1
            self.rejected[name] += "rejected" in record
        self.console.line("upstream", f"{name}: {summary}")


def _summary(message: Message, body: Any) -> str:
    """One line for the console; ContractError when a camera output does not match its contract."""
    contract = CAMERA_OUTPUTS.get(message.output)
    if contract is not None:
        parsed = parse(contract, body if body is not UNDEFINED else message.body)
        if isinstance(parsed, CaptureEvent):
            return f"captured {parsed.matchedTag} -> {parsed.file}"
        if isinstance(parsed, CameraResult):
            return f"{parsed.topTag} {parsed.topProbability:.2f} (frame {parsed.frame})"
    if isinstance(body, dict):
        return json.dumps(body, default=str)[:120]
    if message.properties:
        return ", ".join(f"{k}={v}" for k, v in list(message.properties.items())[:4])
    return f"{len(message.body)} bytes"


class _Link:
    """The router's connection to one module's broker."""

    def __init__(self, router: Router, module: str, address: str, ca: Path) -> None:
        self.router = router
        self.module = module
        self.address = address
        self.ca = ca
        self.connected = threading.Event()
        self.client = mqtt.Client(client_id="edgevision-runtime", clean_session=False, protocol=mqtt.MQTTv311)
        self.client.tls_set(ca_certs=str(ca))
        self.client.reconnect_delay_set(0.2, 2)
        self.client.max_queued_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        self.client.connect_async(self.address, MQTT_TLS_PORT, keepalive=30)
        self.client.loop_start()

    def prime_session(self, device_id: str, timeout: float = 10.0) -> None:
        """Open the module's persistent session (its client id, clean_session=False) subscribed to its inputs,
        so messages routed to it before it connects wait in the broker, as edgeHub keeps them for a module."""
        client = mqtt.Client(client_id=f"{device_id}/{self.module}", clean_session=False, protocol=mqtt.MQTTv311)
        client.tls_set(ca_certs=str(self.ca))
        subscribed = threading.Event()
        client.on_connect = lambda c, *_: c.subscribe(f"devices/{device_id}/modules/{self.module}/inputs/#", 1)
        client.on_subscribe = lambda *_: subscribed.set()
        client.connect(self.address, MQTT_TLS_PORT, keepalive=30)
        client.loop_start()
        try:
            if not subscribed.wait(timeout):
                log.warning("router: could not open %s's session on its broker", self.module)
        finally:
            client.disconnect()
            client.loop_stop()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)  # queued by paho while the broker is away

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: int) -> None:
        if rc != 0:
            log.warning("router: %s's broker refused the connection (%s)", self.module, mqtt.connack_string(rc))
            return
        client.subscribe([(EVENTS, 1), (TWIN_GET, 1), (TWIN_REPORTED, 1)])
        self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, rc: int) -> None:
        self.connected.clear()
        if rc != 0:
            log.debug("router: lost %s's broker (%s); reconnecting", self.module, rc)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.router.handle(self, msg.topic, msg.payload)
        except Exception:  # one bad message must not stop the link
            log.exception("router: cannot handle %s from %s", msg.topic, self.module)


class Router:
    """Routes between module brokers and serves twins. Routes can be swapped while running."""

    def __init__(
        self, device_id: str, routes: list[Route], twins: TwinStore, upstream: UpstreamLog, ca: Path, console: Console
    ):
        self.device_id = device_id
        self.routes = routes
        self.twins = twins
        self.upstream = upstream
        self.ca = ca
        self.console = console
        self.links: dict[str, _Link] = {}
        self.received: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.unrouted = 0

    def add_module(self, module: str, address: str) -> None:
        self.links[module] = _Link(self, module, address, self.ca)

    def start(self, timeout: float = 10.0) -> None:
        for link in self.links.values():
            link.prime_session(self.device_id)
            link.start()
        for link in self.links.values():
            if not link.connected.wait(timeout):
                log.warning("router: %s's broker did not accept the router within %s s", link.module, timeout)

    def stop(self) -> None:
        for link in self.links.values():
            link.stop()

    # -- incoming ---------------------------------------------------------------------------------------

    def handle(self, link: _Link, topic: str, payload: bytes) -> None:
        if topic.startswith("$iothub/twin/GET/"):
            rid = _query(topic).get("$rid", "")
            link.publish(f"$iothub/twin/res/200/?$rid={rid}", json.dumps(self.twins.document(link.module)).encode())
        elif topic.startswith("$iothub/twin/PATCH/properties/reported/"):
            self._reported(link, topic, payload)
        elif topic.startswith("devices/"):
            self._event(link, topic, payload)

    def _reported(self, link: _Link, topic: str, payload: bytes) -> None:
        rid = _query(topic).get("$rid", "")
        try:
            patch = json.loads(payload.decode("utf-8") or "{}")
            if not isinstance(patch, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            link.publish(f"$iothub/twin/res/400/?$rid={rid}", json.dumps({"message": str(exc)}).encode())
            return
        version = self.twins.report(link.module, patch)
        link.publish(f"$iothub/twin/res/204/?$rid={rid}&$version={version}", b"")
        self.console.line("twin", f"{link.module} reported {json.dumps(patch, default=str)[:300]}")

    def _event(self, link: _Link, topic: str, payload: bytes) -> None:
        parts = topic.split("/", 6)
        if len(parts) < 6 or parts[2] != "modules" or parts[4:6] != ["messages", "events"]:
            return
        if parts[3] != link.module:
            log.warning("router: %s published as %s; ignored", link.module, parts[3])
            return
        properties = parse_properties(parts[6] if len(parts) > 6 else "")
        output = properties.pop("$.on", "")
        system = {name: properties.pop(key) for key, name in SYSTEM_KEYS.items() if key in properties}
        for key in [k for k in properties if k.startswith("$.")]:  # other system properties the hub drops
            properties.pop(key)
        system.update(connectionDeviceId=self.device_id, connectionModuleId=link.module)
        message = Message(link.module, output, payload, properties, system)
        self.received[f"{link.module}/{output}"] += 1
        self.route(message)

    def route(self, message: Message) -> None:
        sinks: dict[Sink, list[str]] = {}
        for route in self.routes:
            if route.accepts(message):
                sinks.setdefault(route.sink, []).append(route.name)
        if not sinks:
            self.unrouted += 1
        for sink, names in sinks.items():  # a message reaches each endpoint once, however many routes match
            if sink.upstream:
                self.upstream.append(message, names)
            else:
                self._deliver(message, sink)
            self.delivered[str(sink)] += 1

    def _deliver(self, message: Message, sink: Sink) -> None:
        link = self.links.get(sink.module or "")
        if link is None:
            log.warning("router: no module %s for %s", sink.module, sink)
            return
        properties = {key: message.system[name] for key, name in SYSTEM_KEYS.items() if message.system.get(name)}
        properties.update(message.properties)
        properties["$.cdid"] = self.device_id  # edgeHub sets the sender's identity on input messages
        properties["$.cmid"] = message.module
        topic = f"devices/{self.device_id}/modules/{sink.module}/inputs/{sink.input}/{encode_properties(properties)}"
        link.publish(topic, message.body)

    # -- outgoing twin patches --------------------------------------------------------------------------

    def push_desired(self, module: str, patch: dict[str, Any]) -> None:
        link = self.links.get(module)
        if link is not None:
            link.publish(
                f"$iothub/twin/PATCH/properties/desired/?$version={patch['$version']}", json.dumps(patch).encode()
            )
            self.console.line("twin", f"{module} desired patch {json.dumps(patch, default=str)[:300]}")


def _query(topic: str) -> dict[str, str]:
    return parse_properties(topic.split("?", 1)[1]) if "?" in topic else {}
