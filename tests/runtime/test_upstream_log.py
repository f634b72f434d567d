"""The runtime's `$upstream` reads the camera's outputs as their contracts: a mismatch is kept, marked and counted."""

from __future__ import annotations

import io
import json
from pathlib import Path

from edgevision.contracts import CameraResult, Prediction, encode, now_utc
from edgevision.runtime.console import Console
from edgevision.runtime.router import UpstreamLog
from edgevision.runtime.routes import Message
from tests.runtime.conftest import read_jsonl

JSON = {"contentType": "application/json", "contentEncoding": "utf-8"}


def result() -> dict:
    return encode(
        CameraResult(
            id="1",
            project="",
            iteration="",
            created=now_utc(),
            predictions=[Prediction(tagName="zebra", probability=0.75)],
            topTag="zebra",
            topProbability=0.75,
            source="clip.avi",
            frame=3,
            capturedAt=now_utc(),
            modelId="m@1",
        )
    )


def test_camera_outputs_not_matching_their_contract_are_recorded_as_rejected_and_counted(tmp_path: Path) -> None:
    stream = io.StringIO()
    upstream = UpstreamLog(tmp_path / "upstream.jsonl", Console(stream))
    bodies = [
        json.dumps(result()).encode(),
        json.dumps({**result(), "topProbability": "high"}).encode(),
        b"{not json",
        json.dumps({"event": "capture", "file": "a.jpg"}).encode(),
    ]
    outputs = ["output1", "output1", "output1", "captures"]
    for body, output in zip(bodies, outputs, strict=True):
        upstream.append(Message("camera-capture", output, body, {}, JSON), ["r"])
    upstream.append(Message("other", "telemetry", b'{"t": 1}', {}, JSON), ["r"])  # no contract: just recorded

    records = read_jsonl(tmp_path / "upstream.jsonl")
    assert len(records) == 5  # nothing lost
    assert [bool(r.get("rejected")) for r in records] == [False, True, True, True, False]
    assert "topProbability: Input should be a valid number" in records[1]["rejected"]
    assert records[1]["body"]["topProbability"] == "high"  # kept as sent, for whoever looks into it
    assert "sidecar: Field required" in records[3]["rejected"]
    assert upstream.rejected == {"camera-capture/output1": 2, "camera-capture/captures": 1, "other/telemetry": 0}
    console = stream.getvalue()
    assert "camera-capture/output1: zebra 0.75 (frame 3)" in console
    assert console.count("rejected: not a valid") == 3
