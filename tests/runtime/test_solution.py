"""The full solution under the runtime: the demo command runs the real camera, scorer and display modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgevision.contracts import CAMERA_OUTPUTS, CaptureSidecar, encode, parse
from tests.conftest import wait_until
from tests.runtime.conftest import read_jsonl

pytestmark = pytest.mark.slow

CAPTURE_TAGS = {"zebra", "African elephant"}  # the demo manifest's twin


def test_demo_runs_the_three_modules_and_ends_by_itself(mosquitto, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "edgevision", "run", "--out", str(out), "--duration", "110"],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "every module that can finish has finished" in result.stdout  # the clip ended, not --duration
    assert f"upstream log: {out.resolve() / 'upstream.jsonl'}" in result.stdout
    assert f"captures: {out.resolve() / 'captures'}" in result.stdout

    # The capture folder fills only with frames of the capture tags, and it did fill.
    sidecars = [json.loads(p.read_text()) for p in (out / "captures").rglob("*.json")]
    assert {s["matchedTag"] for s in sidecars} == CAPTURE_TAGS
    assert len(list((out / "captures").rglob("*.jpg"))) == len(sidecars)

    # $upstream: scoring results above the route's WHERE threshold, and one event per stored capture.
    upstream = read_jsonl(out / "upstream.jsonl")
    results = [r for r in upstream if r["output"] == "output1"]
    events = [r for r in upstream if r["output"] == "captures"]
    assert results and all(r["body"]["topProbability"] >= 0.5 for r in results)
    assert {r["body"]["topTag"] for r in results} >= CAPTURE_TAGS
    assert len(events) == len(sidecars) and all(e["body"]["event"] == "capture" for e in events)

    # Every message the modules produced, as it crossed MQTT, and every sidecar, is exactly its contract.
    assert not [r for r in upstream if "rejected" in r]
    for record in upstream:
        model = CAMERA_OUTPUTS[record["output"]]
        assert encode(parse(model, record["body"])) == record["body"]
    for sidecar in sidecars:
        assert encode(parse(CaptureSidecar, sidecar)) == sidecar

    # The display received the camera's messages through its route and rendered the LEDs.
    assert (out / "display" / "current.png").is_file()
    assert "showing icon 'zebra'" in (out / "logs" / "sensehat-display.log").read_text()
    twins = json.loads((out / "twins" / "camera-capture.json").read_text())
    assert twins["reported"]["stats"]["captures"] == len(sidecars)

    # Every kept frame and its sidecar went to the local blob module (Azurite), named device/date/capture.
    assert f"blobs: {out.resolve() / 'blobs.json'}" in result.stdout
    blobs = {b["name"]: b for b in json.loads((out / "blobs.json").read_text())}
    files = [p for p in (out / "captures").rglob("*") if p.suffix in (".jpg", ".json")]
    kept = sorted(p.relative_to(out / "captures").as_posix() for p in files)
    assert sorted(blobs) == [f"captures/edgevision-local/{name}" for name in kept]
    jpegs = [b for name, b in blobs.items() if name.endswith(".jpg")]
    assert {b["metadata"]["matchedTag"] for b in jpegs} == CAPTURE_TAGS
    assert twins["reported"]["stats"]["uploadUploaded"] == len(sidecars) == len(jpegs)

    state = json.loads((out / "runtime.json").read_text())["modules"]
    assert state["camera-capture"]["exitCode"] == 0 and state["camera-capture"]["restarts"] == 0
    assert all(m["restarts"] == 0 for m in state.values())


def test_real_modules_apply_desired_changes_without_restart(live_run, tmp_path: Path, demo_photos) -> None:
    from edgevision.demo.slideshow import make_slideshow
    from edgevision.runtime.demo import DEMO_MANIFEST

    photos = {p.name: p for p in demo_photos}
    clip = make_slideshow([photos["2014_000006.jpg"], photos["dog.jpg"]], tmp_path / "clip.avi", 2.0, 1.0)
    data = json.loads(DEMO_MANIFEST.read_text())
    camera = data["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]["camera-capture"]
    camera["restartPolicy"] = "always"
    camera["settings"]["createOptions"]["HostConfig"]["Binds"] = ["captures:/captures"]  # no demo clip bind
    camera["env"].update(VIDEO_PATH={"value": str(clip)}, LOOP_VIDEO={"value": "true"}, CAPTURE_COOLDOWN={"value": "0"})
    desired = data["modulesContent"]
    desired["camera-capture"]["properties.desired"]["CAPTURE_TAGS"] = "malamute"
    run = live_run(json.dumps(data, indent=2))

    captures = run.out / "captures"
    wait_until(lambda: list(captures.rglob("*malamute.jpg")), 60, "malamute captures")
    assert not list(captures.rglob("*zebra.jpg"))
    before = run.state()["modules"]

    desired["camera-capture"]["properties.desired"]["CAPTURE_TAGS"] = "zebra"
    desired["sensehat-display"]["properties.desired"]["THRESHOLD"] = 0.95
    run.path.write_text(json.dumps(data, indent=2))
    wait_until(lambda: list(captures.rglob("*zebra.jpg")), 60, "zebra captures after the twin change")
    wait_until(lambda: _reported(run, "sensehat-display").get("THRESHOLD") == 0.95, 30, "the display's new threshold")
    assert _reported(run, "camera-capture")["CAPTURE_TAGS"] == "zebra"
    after = run.state()["modules"]
    for name in ("camera-capture", "sensehat-display"):
        assert after[name]["pid"] == before[name]["pid"] and after[name]["restarts"] == 0
    run.stop()


def _reported(run, name: str) -> dict:
    path = run.out / "twins" / f"{name}.json"
    return json.loads(path.read_text())["reported"] if path.exists() else {}
