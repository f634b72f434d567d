"""edgevision.hub against a real broker: outputs, inputs, twin desired and reported properties, close."""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from edgevision.hub import EdgeHub, InputMessage, LocalHub, connect
from edgevision.hub.client import HubError
from tests.conftest import wait_until
from tests.hub.conftest import FLUSHER, MODULE, Edge


@pytest.fixture(scope="module")
def hub(edge: Edge) -> Iterator[EdgeHub]:
    patch = pytest.MonkeyPatch()
    for key, value in edge.environ.items():
        patch.setenv(key, value)
    connected = connect(MODULE)
    patch.undo()
    assert isinstance(connected, EdgeHub) and connected.is_edge
    yield connected
    connected.close()


def upstream(edge: Edge) -> list[dict[str, Any]]:
    return [json.loads(line) for line in edge.upstream.read_text().splitlines() if line.strip()]


def test_send_reaches_the_output_with_json_body_and_properties(edge: Edge, hub: EdgeHub) -> None:
    hub.send("output1", {"topTag": "zebra", "topProbability": 0.97}, {"topTag": "zebra", "topProbability": 0.97})
    record = wait_until(lambda: [r for r in upstream(edge) if r["output"] == "output1"])[0]
    assert record["module"] == MODULE
    assert record["body"] == {"topTag": "zebra", "topProbability": 0.97}
    assert record["properties"] == {"topTag": "zebra", "topProbability": "0.97"}  # properties travel as strings
    assert record["system"]["contentType"] == "application/json"
    assert record["system"]["contentEncoding"] == "utf-8"


def test_inputs_arrive_as_input_messages(edge: Edge, hub: EdgeHub) -> None:
    received: queue.Queue[InputMessage] = queue.Queue()
    hub.on_input(received.put)
    hub.send("loop", {"n": 1, "text": "zèbre"}, {"camera": "cam 1"})
    message = received.get(timeout=20)
    assert message.input_name == "in1"
    assert message.json() == {"n": 1, "text": "zèbre"}
    assert message.properties["camera"] == "cam 1"
    assert message.content_type == "application/json"


def test_a_failing_input_handler_does_not_stop_later_messages(edge: Edge, hub: EdgeHub) -> None:
    seen: queue.Queue[int] = queue.Queue()

    def handler(message: InputMessage) -> None:
        seen.put(message.json()["n"])
        if message.json()["n"] == 1:
            raise RuntimeError("handler bug")

    hub.on_input(handler)
    hub.send("loop", {"n": 1})
    hub.send("loop", {"n": 2})
    assert [seen.get(timeout=20), seen.get(timeout=20)] == [1, 2]


def test_desired_properties_and_patches(edge: Edge, hub: EdgeHub) -> None:
    assert hub.desired() == {"THRESHOLD": 0.7, "label": "start"}  # twin metadata ($version) removed
    patches: queue.Queue[dict[str, Any]] = queue.Queue()
    hub.on_desired(patches.put)
    patch = edge.twins.set_desired(MODULE, {"THRESHOLD": 0.4, "label": "start", "new": True})
    assert patch is not None
    edge.router.push_desired(MODULE, patch)
    assert patches.get(timeout=20) == {"THRESHOLD": 0.4, "new": True}
    assert hub.desired() == {"THRESHOLD": 0.4, "label": "start", "new": True}


def test_reported_properties_are_recorded(edge: Edge, hub: EdgeHub) -> None:
    hub.report({"frames": 12, "nested": {"a": 1}})
    hub.report({"nested": {"b": 2}})
    reported = wait_until(lambda: (r := edge.twins.reported(MODULE)).get("nested", {}).get("b") and r)
    assert reported["frames"] == 12 and reported["nested"] == {"a": 1, "b": 2}


def test_close_flushes_queued_messages(edge: Edge) -> None:
    patch = pytest.MonkeyPatch()
    for key, value in edge.environs[FLUSHER].items():
        patch.setenv(key, value)
    try:
        other = connect(FLUSHER)
    finally:
        patch.undo()
    for n in range(30):
        other.send("burst", {"n": n})
    other.close()
    burst = wait_until(lambda: len(r := [x for x in upstream(edge) if x["output"] == "burst"]) == 30 and r)
    assert [r["body"]["n"] for r in burst] == list(range(30))
    assert other.sent == 30 and other.dropped == 0


def test_without_edge_variables_a_local_hub_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    local = connect("camera-capture", environ={})
    assert isinstance(local, LocalHub) and not local.is_edge
    local.send("output1", {"topTag": "deer"})
    local.report({"a": 1})
    assert local.desired() == {}
    assert local.sent == 1 and local.reported_properties == {"a": 1}
    assert "camera-capture -> output1" in caplog.text


def test_unreachable_workload_api_is_a_hub_error(edge: Edge, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in edge.environ.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("IOTEDGE_WORKLOADURI", "unix:///nonexistent/workload.sock")
    with pytest.raises(HubError, match="cannot create the IoT Edge module client"):
        connect(MODULE)


def test_sending_never_blocks_the_caller(edge: Edge, hub: EdgeHub) -> None:
    broker = edge.brokers[MODULE]
    assert broker.pid is not None
    sent_before = hub.sent
    done = threading.Event()

    def burst() -> None:
        for n in range(200):
            hub.send("fast", {"n": n})
        done.set()

    # A frozen broker acknowledges nothing: a send that waited for the hub would hang here.
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        threading.Thread(target=burst, daemon=True).start()
        assert done.wait(20), "send() blocked while the hub could not acknowledge"
        assert hub.sent == sent_before  # nothing went out: every message is waiting in the queue
    finally:
        os.kill(broker.pid, signal.SIGCONT)
    wait_until(lambda: len([x for x in upstream(edge) if x["output"] == "fast"]) == 200, 30)
