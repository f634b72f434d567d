"""`edgevision run --portal`: the demo with the custom-vision-portal module; the kept frames reach its project."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_demo_with_the_portal_lists_every_kept_frame(mosquitto, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "edgevision", "run", "--portal", "--out", str(out), "--duration", "110"],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    kept = sorted(p.relative_to(out / "captures").as_posix() for p in (out / "captures").rglob("*.jpg"))
    assert kept
    db = sqlite3.connect(out / "portal" / "portal.db")
    try:
        (project,) = db.execute("SELECT id FROM projects WHERE name = 'demo camera'").fetchone()
        rows = db.execute(
            "SELECT source_key FROM predictions WHERE project_id = ? AND application = 'camera-capture'", (project,)
        ).fetchall()
    finally:
        db.close()
    assert sorted(key.removeprefix("capture:") for (key,) in rows) == kept
