"""The full solution under the runtime: the demo command runs the real camera, scorer and display modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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

    # The display received the camera's messages through its route and rendered the LEDs.
    assert (out / "display" / "current.png").is_file()
    assert "showing icon 'zebra'" in (out / "logs" / "sensehat-display.log").read_text()
    twins = json.loads((out / "twins" / "camera-capture.json").read_text())
    assert twins["reported"]["stats"]["captures"] == len(sidecars)

    state = json.loads((out / "runtime.json").read_text())["modules"]
    assert state["camera-capture"]["exitCode"] == 0 and state["camera-capture"]["restarts"] == 0
    assert all(m["restarts"] == 0 for m in state.values())
