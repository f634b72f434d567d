"""Twin bookkeeping (merge patches, diffs, versions) and the workload API over its unix socket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests_unixsocket

from edgevision.runtime import certs
from edgevision.runtime.twins import TwinStore, diff, merge_patch
from edgevision.runtime.workload import API_VERSION, WorkloadAPI


def test_merge_patch_merges_objects_and_null_deletes() -> None:
    target = {"a": 1, "nested": {"x": 1, "y": 2}, "gone": True}
    merge_patch(target, {"a": 2, "nested": {"y": None, "z": 3}, "gone": None, "$version": 9})
    assert target == {"a": 2, "nested": {"x": 1, "z": 3}}


def test_diff_is_the_patch_that_turns_old_into_new() -> None:
    old = {"THRESHOLD": 0.6, "tags": "zebra", "nested": {"a": 1, "b": 2}}
    new = {"THRESHOLD": 0.8, "nested": {"a": 1, "c": 3}, "added": [1]}
    patch = diff(old, new)
    assert patch == {"THRESHOLD": 0.8, "tags": None, "nested": {"b": None, "c": 3}, "added": [1]}
    merge_patch(old, patch)
    assert old == new


def test_store_versions_and_files(tmp_path: Path) -> None:
    store = TwinStore(tmp_path)
    store.add("display", {"THRESHOLD": 0.6})
    assert store.document("display")["desired"] == {"THRESHOLD": 0.6, "$version": 1}
    assert store.set_desired("display", {"THRESHOLD": 0.6}) is None  # nothing changed, nothing pushed
    assert store.set_desired("display", {"THRESHOLD": 0.9}) == {"THRESHOLD": 0.9, "$version": 2}
    assert store.report("display", {"frames": 3}) == 2
    saved = json.loads((tmp_path / "display.json").read_text())
    assert saved == {"desired": {"THRESHOLD": 0.9, "$version": 2}, "reported": {"frames": 3, "$version": 2}}


@pytest.fixture
def workload() -> Iterator[WorkloadAPI]:
    folder = Path(tempfile.mkdtemp(prefix="edgevision-wl-"))
    ca = certs.generate(folder / "certs", ["127.0.0.9"])
    api = WorkloadAPI(folder / "workload.sock", ca.ca_pem())
    api.start()
    yield api
    api.stop()
    shutil.rmtree(folder, ignore_errors=True)


def _url(api: WorkloadAPI, path: str) -> str:
    socket = str(api.socket_path).replace("/", "%2F")
    return f"http+unix://{socket}{path}?api-version={API_VERSION}"


def test_trust_bundle_and_signing(workload: WorkloadAPI) -> None:
    generation = workload.add_module("camera-capture")
    session = requests_unixsocket.Session()
    bundle = session.get(_url(workload, "/trust-bundle"), timeout=5).json()
    assert bundle["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    data = base64.b64encode(b"hub/devices/d/modules/camera-capture\n1800000000").decode()
    request = {"keyId": "primary", "algo": "HMACSHA256", "data": data}
    signed = session.post(_url(workload, f"/modules/camera-capture/genid/{generation}/sign"), json=request, timeout=5)
    key = workload.identities["camera-capture"][1]
    expected = base64.b64encode(hmac.new(key, base64.b64decode(data), hashlib.sha256).digest()).decode()
    assert signed.status_code == 200 and signed.json() == {"digest": expected}
    wrong = session.post(_url(workload, "/modules/camera-capture/genid/other/sign"), json=request, timeout=5)
    assert wrong.status_code == 404
    bad = session.post(_url(workload, f"/modules/camera-capture/genid/{generation}/sign"), json={}, timeout=5)
    assert bad.status_code == 400
