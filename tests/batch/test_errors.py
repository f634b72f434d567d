"""One-line errors (exit 2, no traceback) for what users get wrong or lack: Java, pyspark, paths, OUT."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from tests.batch.conftest import run_cli


def assert_one_line_error(result, *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr.strip()
    assert message.startswith("edgevision score: error: ") and "\n" not in message, message
    for needle in needles:
        assert needle in message, message


def test_no_java_on_path(photo_tree: Path, tmp_path: Path) -> None:
    # PATH keeps only this interpreter's folder (no java there); JAVA_HOME unset.
    env = {"PATH": str(Path(sys.executable).parent), "JAVA_HOME": ""}
    result = run_cli("score", str(photo_tree), "--out", str(tmp_path / "out"), "--engine", "spark", env=env)
    assert_one_line_error(result, "Java 17", "no java on PATH", "openjdk-17-jre-headless")
    assert not (tmp_path / "out").exists()


def test_java_too_old(photo_tree: Path, tmp_path: Path) -> None:
    home = tmp_path / "jdk8"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\necho 'java version \"1.8.0_381\"' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    env = {"JAVA_HOME": str(home)}
    result = run_cli("score", str(photo_tree), "--out", str(tmp_path / "out"), "--engine", "spark", env=env)
    assert_one_line_error(result, "found Java 8", str(java))


def test_no_pyspark(photo_tree: Path, tmp_path: Path) -> None:
    # A `pyspark` that cannot be imported, first on the path: what a venv without the spark extra looks like.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pyspark.py").write_text("raise ImportError('No module named pyspark')\n")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(shadow), os.environ.get("PYTHONPATH")]))}
    result = run_cli("score", str(photo_tree), "--out", str(tmp_path / "out"), "--engine", "spark", env=env)
    assert_one_line_error(result, "pyspark", "pip install 'edgevision[spark]'")


def test_local_engine_still_works_without_pyspark(photo_tree: Path, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pyspark.py").write_text("raise ImportError('No module named pyspark')\n")
    result = run_cli(
        "score", str(photo_tree / "photos"), "--out", str(tmp_path / "out"), env={"PYTHONPATH": str(shadow)}
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "scores.parquet").is_file()


def test_missing_source(tmp_path: Path) -> None:
    result = run_cli("score", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "no such file, folder or glob match")


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden.jpg").write_bytes(b"x")
    result = run_cli("score", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "no files to score")


def test_remote_source_needs_spark(tmp_path: Path) -> None:
    result = run_cli("score", "s3a://bucket/tiles", "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "--engine spark")


def test_master_needs_spark(photo_tree: Path, tmp_path: Path) -> None:
    result = run_cli("score", str(photo_tree), "--out", str(tmp_path / "out"), "--master", "local[2]")
    assert_one_line_error(result, "--engine spark only")


def test_existing_output_is_kept_without_overwrite(photo_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run_cli("score", str(photo_tree / "broken"), "--out", str(out))
    assert first.returncode == 0, first.stderr
    before = (out / "scores.parquet").read_bytes()
    again = run_cli("score", str(photo_tree / "photos"), "--out", str(out))
    assert_one_line_error(again, "already exists", "--overwrite")
    assert (out / "scores.parquet").read_bytes() == before
    replaced = run_cli("score", str(photo_tree / "photos"), "--out", str(out), "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert (out / "scores.parquet").read_bytes() != before


def test_bad_model_folder(photo_tree: Path, tmp_path: Path) -> None:
    result = run_cli("score", str(photo_tree), "--out", str(tmp_path / "out"), "--model", str(tmp_path))
    assert_one_line_error(result, str(tmp_path))


@pytest.mark.parametrize("bad", ["--workers=-1", "--batch-size=0"])
def test_bad_numbers_name_the_setting(photo_tree: Path, tmp_path: Path, bad: str) -> None:
    result = run_cli("score", str(photo_tree), "--out", str(tmp_path / "out"), bad)
    assert_one_line_error(result, "BATCH_")
