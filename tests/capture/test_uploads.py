"""Store and forward to Blob Storage, against a real Azurite and the real azure-storage-blob SDK: every kept frame
uploaded exactly once through outages of the store, kill -9 and restarts of the camera; the hard size limit;
a wrong key; the journal itself under kill -9."""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from edgevision.capture.journal import JOURNAL_NAME, UploadJournal
from edgevision.capture.module import CaptureModule
from edgevision.capture.store import CaptureStore
from edgevision.capture.uploads import API_VERSION, BlobTarget, Throttle, blob_metadata, blob_names
from edgevision.contracts import dumps
from edgevision.demo.slideshow import Slideshow
from tests.capture.conftest import ModuleProcess, RecordingHub, sample_sidecar, settings_for, status
from tests.conftest import Azurite, ScoringService, free_port, wait_until

PREFIX = "park-cam-1"


def on_disk(captures: Path) -> dict[str, str]:
    """Blob name -> SHA-256 of what the camera must have uploaded: each capture's JPEG and sidecar."""
    expected = {}
    for jpeg in sorted(captures.rglob("*.jpg")):
        jpeg_name, sidecar_name = blob_names(PREFIX, jpeg.relative_to(captures).as_posix())
        expected[f"captures/{jpeg_name}"] = hashlib.sha256(jpeg.read_bytes()).hexdigest()
        expected[f"captures/{sidecar_name}"] = hashlib.sha256(jpeg.with_suffix(".json").read_bytes()).hexdigest()
    return expected


def in_store(azurite: Azurite) -> dict[str, str]:
    return {blob["name"]: hashlib.sha256(azurite.download(blob["name"])).hexdigest() for blob in azurite.blobs()}


def uploading(connection: str, captures: Path, **values: object) -> dict[str, object]:
    return {
        "capture_dir": captures,
        "blob_connection_string": connection,
        "blob_prefix": PREFIX,
        "capture_tags": "zebra",
        "capture_cooldown": 0,
        "max_backoff": 0.5,
        **values,
    }


def test_the_sdk_is_pinned_to_the_api_version_of_the_iot_edge_module(azurite: Azurite) -> None:
    assert API_VERSION == "2019-07-07"
    target = BlobTarget(azurite.connection_string, "pin", 10)
    assert target.container.api_version == "2019-07-07"
    metadata = {"sha256": hashlib.sha256(b"x").hexdigest()}
    assert target.put("a/b.txt", b"x", metadata, "text/plain") is True
    assert target.put("a/b.txt", b"x", metadata, "text/plain") is False  # refused by If-None-Match, same content
    assert [b["name"] for b in azurite.blobs()] == ["pin/a/b.txt"]


def test_names_follow_device_date_capture_and_metadata_carries_the_sidecar() -> None:
    assert blob_names("cam/", "2026-11-22/20261122T021734_844361Z_000016_zebra.jpg") == (
        "cam/2026-11-22/20261122T021734_844361Z_000016_zebra.jpg",
        "cam/2026-11-22/20261122T021734_844361Z_000016_zebra.json",
    )
    record = sample_sidecar("zebra", 16, source="rtsp://parc/caméra")
    metadata = blob_metadata(dumps(record).encode(), b"jpeg")
    assert metadata["sha256"] == hashlib.sha256(b"jpeg").hexdigest()
    assert metadata["matchedTag"] == "zebra" and metadata["frame"] == "16"
    assert json.loads(metadata["predictions"]) == [{"tagName": "zebra", "probability": 0.9}]
    assert metadata["source"] == "rtsp://parc/cam%C3%A9ra"  # metadata values are ASCII
    assert all(value.isascii() for value in metadata.values())
    assert "sidecarError" in blob_metadata(b'{"capturedAt": "trunc', b"jpeg")
    assert blob_metadata(None, b"jpeg")["sidecarError"] == "missing"


def test_the_bandwidth_cap_spaces_blobs_by_their_size_at_the_live_rate() -> None:
    now = [100.0]
    throttle = Throttle(clock=lambda: now[0])
    assert throttle.delay(1000) == 0  # nothing sent yet
    throttle.sent(5000)
    assert throttle.delay(1000) == pytest.approx(5.0)
    assert throttle.delay(0) == 0  # 0 = no cap
    now[0] += 2
    assert throttle.delay(1000) == pytest.approx(3.0)
    assert throttle.delay(5000) == 0  # the twin raised the cap: the wait in progress shrinks at once


def test_a_capture_run_uploads_every_kept_frame_once(
    start_module: Callable[..., ModuleProcess],
    scoring_service: ScoringService,
    slideshow: Slideshow,
    azurite: Azurite,
    tmp_path: Path,
) -> None:
    captures = tmp_path / "captures"
    module = start_module(
        video_path=slideshow,
        loop_video="false",
        image_processing_endpoint=f"{scoring_service.url}/image",
        **uploading(azurite.connection_string, captures),
    )
    assert module.wait(90) == 0, module.log
    expected = on_disk(captures)
    assert len(expected) == 2 * 6  # six zebra frames, each a JPEG and its sidecar
    assert in_store(azurite) == expected
    jpeg = next(b for b in azurite.blobs() if b["name"].endswith(".jpg"))
    assert jpeg["metadata"]["matchedTag"] == "zebra" and jpeg["metadata"]["sha256"] == expected[jpeg["name"]]
    journal = UploadJournal(captures)
    assert journal.counts()["queued"] == 0 and journal.counts()["uploaded"] == 6
    journal.close()


@pytest.mark.slow
def test_a_store_outage_and_a_killed_camera_still_end_with_every_frame_uploaded_once(
    start_module: Callable[..., ModuleProcess],
    scoring_service: ScoringService,
    slideshow: Slideshow,
    azurite: Azurite,
    tmp_path: Path,
) -> None:
    captures = tmp_path / "captures"
    viewer = free_port()
    env = {
        "video_path": slideshow,
        "image_processing_endpoint": f"{scoring_service.url}/image",
        "show_video": "true",  # its /api/status shows the upload counters
        "viewer_port": viewer,
        "frame_rate": 20,
        **uploading(azurite.connection_string, captures),
    }
    first = start_module(loop_video="true", **env)

    def stats() -> dict:
        return (status(viewer) or {}).get("stats", {})

    wait_until(lambda: stats().get("uploadUploaded", 0) >= 3, 60, "first uploads")
    azurite.kill()  # the blob module goes away ...
    wait_until(lambda: (status(viewer) or {}).get("uploadState") == "unreachable", 30, "the outage noticed")
    metrics = requests.get(f"http://127.0.0.1:{viewer}/metrics", timeout=10).text
    assert 'edgevision_camera_upload_state{state="unreachable"} 1' in metrics
    queued = stats()["uploadQueued"]
    wait_until(lambda: stats()["uploadQueued"] >= queued + 4, 30, "captures queued during the outage")
    frames = stats()["frames"]
    wait_until(lambda: stats()["frames"] >= frames + 10, 30, "frames going on during the outage")
    azurite.start()  # ... and comes back; the camera is killed while it works through its backlog
    wait_until(lambda: (status(viewer) or {}).get("uploadState") == "ok", 30, "uploads resumed")
    first.process.send_signal(signal.SIGKILL)
    first.wait(10)
    assert first.log.count("uploads failing: blob store unreachable") == 1, first.log  # once per change of state
    assert "uploading again after" in first.log

    second = start_module(loop_video="false", **{**env, "viewer_port": free_port()})
    assert second.wait(120) == 0, second.log
    expected = on_disk(captures)
    assert in_store(azurite) == expected  # every frame there, each name once, with the bytes on the device
    journal = UploadJournal(captures)
    counts = journal.counts()
    journal.close()
    assert counts["queued"] == 0 and counts["dropped"] == 0
    assert counts["uploaded"] >= len(expected) // 2  # a capture re-sent after the kill is counted, not rewritten


def test_the_hard_limit_deletes_unuploaded_frames_only_past_it_and_says_so(
    scoring_service: ScoringService, slideshow: Slideshow, dog_clip: Slideshow, azurite: Azurite, tmp_path: Path
) -> None:
    captures = tmp_path / "captures"
    azurite.kill()  # the store is down for the whole first run
    hub = RecordingHub()
    settings = settings_for(
        scoring_service.url,
        slideshow,
        **uploading(azurite.connection_string, captures, capture_max_mb=0.01, capture_hard_max_mb=0.25, upload_drain=0),
    )
    module = CaptureModule(settings, hub)
    assert module.run() == 0
    kept = CaptureStore(captures)
    counters = module.keeper.counters
    assert counters.captures == 6
    assert 0 < len(kept) < 6 and kept.total_bytes <= 0.25 * 1024 * 1024
    stats = hub.reported["stats"]
    assert stats["uploadDropped"] == 6 - len(kept) > 0
    assert stats["uploadQueued"] == len(kept) and stats["uploadUploaded"] == 0
    assert counters.pruned == 0  # the soft limit deleted nothing that was not uploaded
    assert hub.reported["uploadState"] == "unreachable"

    azurite.start()  # the next run, with no zebra in view, uploads what survived, nothing else
    later = settings.model_copy(update={"video_path": str(dog_clip.path), "upload_drain": 30.0})
    hub = RecordingHub()
    assert CaptureModule(later, hub).run() == 0
    assert hub.reported["stats"]["uploadQueued"] == 0
    assert hub.reported["stats"]["uploadDropped"] == 6 - len(kept)  # counted across restarts
    # uploaded now, so the soft limit (0.01 MB) may delete them: everything that is in the store came from disk
    assert len(in_store(azurite)) == 2 * len(kept)


def test_a_wrong_key_is_logged_once_and_never_stops_the_camera(
    scoring_service: ScoringService,
    slideshow: Slideshow,
    azurite: Azurite,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = azurite.connection_string.replace("AccountKey=dGVz", "AccountKey=d3Jv")
    hub = RecordingHub()
    values = uploading(wrong, tmp_path / "captures", upload_drain=0)
    with caplog.at_level(logging.INFO, logger="edgevision.capture"):
        module = CaptureModule(settings_for(scoring_service.url, slideshow, **values), hub)
        assert module.run() == 0
    assert module.counters.frames == slideshow.frame_count  # every frame handled while uploads failed
    assert module.keeper.counters.captures == 6
    assert hub.reported["uploadState"] == "unauthorized"
    assert "refused the account key" in hub.reported["uploadError"]
    assert sum("refused the account key" in r.getMessage() for r in caplog.records) == 1
    assert azurite.blobs() == []


JOURNAL_WRITER = """
import sys
from datetime import datetime, timedelta, timezone
from edgevision.capture.journal import UploadJournal
journal = UploadJournal(sys.argv[1])
start = datetime(2026, 1, 1, tzinfo=timezone.utc)
for i in range(100000):
    path = f"2026-01-01/{i:06d}.jpg"
    journal.add([(path, start + timedelta(seconds=i))])
    if i % 2:
        journal.uploaded(path, 10)
    print(i, flush=True)  # printed only after the commit
"""


def test_the_journal_survives_kill_9(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", JOURNAL_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    assert writer.stdout is not None
    for line in writer.stdout:
        if int(line) >= 200:
            break
    writer.send_signal(signal.SIGKILL)  # in the middle of some transaction
    writer.wait(10)
    confirmed = int(line)
    journal = UploadJournal(tmp_path)
    assert journal._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    paths = journal.paths()
    for i in range(confirmed + 1):
        path = f"2026-01-01/{i:06d}.jpg"
        assert path in paths
        assert journal.pending(path) == (i % 2 == 0)
    counts = journal.counts()
    assert counts["uploaded"] >= (confirmed + 1) // 2
    assert counts["queued"] >= (confirmed + 2) // 2
    entry = journal.next()
    assert entry is not None and entry.path == "2026-01-01/000000.jpg"  # oldest first
    assert entry.captured_at == datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(0)
    assert (tmp_path / JOURNAL_NAME).exists()
    journal.close()


def test_a_capture_uploaded_just_before_a_kill_is_not_written_again(
    scoring_service: ScoringService, slideshow: Slideshow, azurite: Azurite, tmp_path: Path
) -> None:
    """The worst kill: both blobs reached the store but the journal was not marked. The next start sends the
    capture again; the store refuses the write (If-None-Match), the blob is left as it was, the journal settles."""
    captures = tmp_path / "captures"
    azurite.kill()  # first run: everything stays queued
    values = uploading(azurite.connection_string, captures, upload_drain=0)
    settings = settings_for(scoring_service.url, slideshow, **values)
    assert CaptureModule(settings, RecordingHub()).run() == 0
    azurite.start()
    store = CaptureStore(captures)
    first = store.captures()[0]
    relative = first.jpeg.relative_to(captures).as_posix()
    target = BlobTarget(azurite.connection_string, "captures", 10)
    jpeg, sidecar = first.jpeg.read_bytes(), first.sidecar.read_bytes()
    metadata = blob_metadata(sidecar, jpeg)
    for name, data in zip(blob_names(PREFIX, relative), (jpeg, sidecar), strict=True):
        target.put(name, data, metadata, "application/octet-stream")  # what the killed uploader got through
    before = {b: target.container.get_blob_client(b).get_blob_properties().etag for b in blob_names(PREFIX, relative)}

    later = settings.model_copy(update={"capture_tags": ["no-such-tag"], "upload_drain": 30.0})
    hub = RecordingHub()
    assert CaptureModule(later, hub).run() == 0
    assert in_store(azurite) == on_disk(captures)
    after = {b: target.container.get_blob_client(b).get_blob_properties().etag for b in blob_names(PREFIX, relative)}
    assert after == before  # refused, not rewritten
    assert hub.reported["stats"]["uploadQueued"] == 0
    assert hub.reported["stats"]["uploadUploaded"] == len(store)


def test_a_stalled_blob_store_never_holds_up_the_frame_loop(
    scoring_service: ScoringService, slideshow: Slideshow, tmp_path: Path
) -> None:
    """A store that accepts the connection and never answers (a hung module, a half-dead link): the first
    upload hangs for UPLOAD_TIMEOUT while every frame is scored, sent and kept."""
    import socket

    from edgevision.runtime.azurite import connection_string
    from tests.conftest import BLOB_ACCOUNT, BLOB_KEY

    with socket.socket() as stalled:
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(16)  # the kernel completes the handshake; nobody ever reads or answers
        endpoint = f"http://127.0.0.1:{stalled.getsockname()[1]}"
        connection = connection_string(BLOB_ACCOUNT, BLOB_KEY, endpoint)
        values = uploading(connection, tmp_path / "captures", upload_timeout=60, upload_drain=0)
        hub = RecordingHub()
        module = CaptureModule(settings_for(scoring_service.url, slideshow, **values), hub)
        seen: list[str] = []
        hub.on_send = lambda _: seen.append(module.uploader.status.state)
        assert module.run() == 0
    assert module.counters.frames == slideshow.frame_count
    assert module.keeper.counters.captures == 6
    assert seen and set(seen) == {"starting"}  # every message went out while the first upload still hung
    assert hub.reported["stats"]["uploadQueued"] == 6
