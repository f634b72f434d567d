"""The runtime end to end: real mosquitto brokers, real azure-iot-device ModuleClients in module processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.runtime.conftest import IMAGES, TEST_IMAGE, manifest, module, read_jsonl

pytestmark = pytest.mark.slow

TO_DISPLAY = 'FROM /messages/modules/camera/outputs/output1 INTO BrokeredEndpoint("/modules/display/inputs/input1")'
TO_UPSTREAM = "FROM /messages/modules/camera/outputs/* WHERE $body.topProbability >= {min} INTO $upstream"


def pair(tmp_path: Path, sender: dict, restart: str = "always", label: str = "first", minimum: float = 0.5) -> str:
    return manifest(
        {
            "camera": module({"ROLE": "sender", "REPEAT": "1", "INTERVAL": "0.3", **sender}, restart),
            "display": module({"ROLE": "receiver", "RECORD": str(tmp_path / "received.jsonl")}),
        },
        {"toDisplay": TO_DISPLAY, "toUpstream": TO_UPSTREAM.format(min=minimum)},
        {"display": {"label": label}},
    )


def test_routes_where_filter_and_twin_changes_without_restart(live_run, tmp_path: Path) -> None:
    run = live_run(pair(tmp_path, {"PROBS": "0.9,0.2,0.7"}))
    received = tmp_path / "received.jsonl"
    upstream = run.out / "upstream.jsonl"
    wait_until(lambda: len(read_jsonl(received)) >= 6 and len(read_jsonl(upstream)) >= 4, 40, "routed messages")

    records = read_jsonl(received)
    assert {r["body"]["topProbability"] for r in records} == {0.9, 0.2, 0.7}  # the display gets everything
    first = records[0]
    assert first["input"] == "input1"
    assert first["properties"]["topTag"] == "zebra"
    assert first["properties"]["$.cmid"] == "camera"  # edgeHub tells the receiver who sent it
    assert {r["label"] for r in records} == {"first"}  # desired properties from the manifest, read at start

    sent = read_jsonl(upstream)
    assert {r["body"]["topProbability"] for r in sent} == {0.9, 0.7}  # WHERE dropped 0.2
    assert all(r["module"] == "camera" and r["output"] == "output1" and r["routes"] == ["toUpstream"] for r in sent)
    assert sent[0]["properties"]["topTag"] == "zebra"
    assert sent[0]["system"]["contentType"] == "application/json"

    twin = wait_until(lambda: _twin(run, "display").get("reported", {}).get("label"), 10, "a reported property")
    assert twin == "first"
    display_pid = run.state()["modules"]["display"]["pid"]

    # Change the desired property and the route in the manifest: both apply without restarting anything.
    run.path.write_text(pair(tmp_path, {"PROBS": "0.9,0.2,0.7"}, label="second", minimum=0.8))
    changed = wait_until(
        lambda: [r for r in read_jsonl(received) if r["label"] == "second"], 30, "the desired-property patch"
    )
    assert changed[0]["pid"] == display_pid
    assert run.state()["modules"]["display"]["restarts"] == 0
    assert _twin(run, "display")["desired"] == {"label": "second", "$version": 2}
    assert _twin(run, "display")["reported"]["label"] == "second"
    after = changed[0]["body"]["seq"] + 1
    wait_until(lambda: max(r["body"]["seq"] for r in read_jsonl(received)) >= after + 4, 20, "more messages")
    late = [r for r in read_jsonl(upstream) if r["body"]["seq"] > after]
    assert late and {r["body"]["topProbability"] for r in late} == {0.9}  # the reloaded route's WHERE

    assert run.stop() == 0
    assert "display reported" in run.console and "display desired patch" in run.console


def test_crashed_module_is_restarted_by_policy(live_run, tmp_path: Path) -> None:
    text = manifest(
        {
            "camera": module(
                {"ROLE": "sender", "REPEAT": "1", "INTERVAL": "0.3", "CRASH_MARKER": str(tmp_path / "crashed")},
                "on-failure",
            ),
            "once": module({"ROLE": "sender", "PROBS": "0.9", "EXIT_CODE": "4"}, "never"),
            "display": module({"ROLE": "receiver", "RECORD": str(tmp_path / "received.jsonl")}),
        },
        {"toDisplay": TO_DISPLAY},
    )
    run = live_run(text)
    senders = wait_until(
        lambda: len(pids := {r["body"]["pid"] for r in read_jsonl(tmp_path / "received.jsonl")}) >= 2 and pids,
        40,
        "messages from a restarted camera",
    )
    assert len(senders) == 2
    state = run.state()["modules"]
    assert state["camera"]["restarts"] == 1 and state["camera"]["status"] == "running"
    assert state["once"]["exitCode"] == 4 and state["once"]["restarts"] == 0 and state["once"]["status"] == "exited"
    assert "camera exited with 3: restarting" in run.console
    assert "once exited with 4 (restartPolicy never: not restarted)" in run.console
    run.stop()


def test_messages_flow_again_after_the_brokers_restart(live_run, tmp_path: Path) -> None:
    run = live_run(pair(tmp_path, {"PROBS": "0.9"}))
    received = tmp_path / "received.jsonl"
    wait_until(lambda: len(read_jsonl(received)) >= 2, 30, "messages before the broker restart")
    before = run.state()["modules"]
    for name in ("camera", "display"):
        os.kill(before[name]["brokerPid"], signal.SIGKILL)  # a crash: only the persisted state survives
    last_seq = max(r["body"]["seq"] for r in read_jsonl(received))
    wait_until(lambda: all(m["brokerRestarts"] >= 1 for m in run.state()["modules"].values()), 20, "broker restarts")
    wait_until(
        lambda: [r for r in read_jsonl(received) if r["body"]["seq"] > last_seq + 2], 60, "messages after the restart"
    )
    after = run.state()["modules"]
    assert after["camera"]["pid"] == before["camera"]["pid"] and after["display"]["pid"] == before["display"]["pid"]
    assert after["camera"]["brokerPid"] != before["camera"]["brokerPid"]
    wait_until(
        lambda: [r for r in read_jsonl(run.out / "upstream.jsonl") if r["body"]["seq"] > last_seq], 30, "upstream"
    )
    run.stop()


def _twin(run, name: str) -> dict:
    import json

    path = run.out / "twins" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _cli(tmp_path: Path, text: str, *extra: str) -> subprocess.Popen[str]:
    path = tmp_path / "deployment.json"
    path.write_text(text)
    image = f"{TEST_IMAGE}={' '.join(IMAGES[TEST_IMAGE])}"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgevision",
            "run",
            str(path),
            "--out",
            str(tmp_path / "out"),
            "--image",
            image,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_cli_run_ends_when_finite_modules_finish(mosquitto, tmp_path: Path) -> None:
    text = manifest(
        {
            "display": module({"ROLE": "receiver", "RECORD": str(tmp_path / "received.jsonl")}, order=0),
            "camera": module({"ROLE": "sender", "PROBS": "0.9,0.3", "EXIT_CODE": "0"}, "never", order=1),
        },
        {"toDisplay": TO_DISPLAY, "toUpstream": TO_UPSTREAM.format(min=0.5)},
    )
    process = _cli(tmp_path, text, "--duration", "120")
    try:
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert "every module that can finish has finished" in output
    assert f"upstream log: {tmp_path / 'out' / 'upstream.jsonl'}" in output
    assert [r["body"]["topProbability"] for r in read_jsonl(tmp_path / "out" / "upstream.jsonl")] == [0.9]
    assert len(read_jsonl(tmp_path / "received.jsonl")) == 2
    log = (tmp_path / "out" / "logs" / "camera.log").read_text()
    assert "sent 1 p=0.9" in log and "sent 2 p=0.3" in log  # per-module logs
    assert "camera" in output and "| sent 1 p=0.9" in output  # console lines prefixed by module name


def test_ctrl_c_stops_every_process(mosquitto, tmp_path: Path) -> None:
    text = manifest({"display": module({"ROLE": "receiver", "RECORD": str(tmp_path / "received.jsonl")})}, {})
    process = _cli(tmp_path, text)
    state_file = tmp_path / "out" / "runtime.json"
    try:
        wait_until(lambda: state_file.exists() and "receiver ready" in _log(tmp_path, "display"), 30, "the module")
        import json

        state = json.loads(state_file.read_text())["modules"]["display"]
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, output
    assert "interrupted: stopping" in output
    for pid in (state["pid"], state["brokerPid"]):
        assert not _alive(pid)


def _log(tmp_path: Path, name: str) -> str:
    path = tmp_path / "out" / "logs" / f"{name}.log"
    return path.read_text() if path.exists() else ""


def _alive(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


def test_a_killed_runtime_leaves_no_orphans(mosquitto, tmp_path: Path) -> None:
    text = manifest({"display": module({"ROLE": "receiver", "RECORD": str(tmp_path / "received.jsonl")})}, {})
    process = _cli(tmp_path, text)
    state_file = tmp_path / "out" / "runtime.json"
    try:
        wait_until(lambda: state_file.exists() and "receiver ready" in _log(tmp_path, "display"), 30, "the module")
        import json

        run_state = json.loads(state_file.read_text())
        state = run_state["modules"]["display"]
        process.kill()  # no clean-up code runs: the children must go by themselves
        process.wait(10)
    finally:
        process.kill()
    scratch = Path(run_state["workloadUri"].removeprefix("unix://")).parent
    shutil.rmtree(scratch, ignore_errors=True)  # the killed runtime could not remove its temp folder
    for pid in (state["pid"], state["brokerPid"]):
        assert not _alive(pid)
