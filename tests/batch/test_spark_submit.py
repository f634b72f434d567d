"""The Spark job through `spark-submit --master local[2]`, as on a cluster, against the local engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.batch.conftest import BROKEN, run_cli

pytestmark = pytest.mark.slow


def spark_submit() -> Path:
    import pyspark

    script = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    if not script.is_file():
        pytest.skip(f"pyspark ships no bin/spark-submit at {script}")
    return script


def test_spark_submit_local2_matches_the_local_engine(photo_tree: Path, tmp_path: Path) -> None:
    from edgevision.batch import spark_job
    from edgevision.batch.spark_engine import SparkUnavailable, check_spark_available

    try:
        check_spark_available()
    except SparkUnavailable as exc:
        pytest.skip(str(exc))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    command = [str(spark_submit()), "--master", "local[2]", "--conf", "spark.ui.enabled=false"]
    command += [spark_job.__file__, str(photo_tree), "--out", str(tmp_path / "spark"), "--csv"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scored" in result.stdout and f"({len(BROKEN)} errors)" in result.stdout

    local = run_cli("score", str(photo_tree), "--out", str(tmp_path / "local"))
    assert local.returncode == 0, local.stderr
    a = pd.read_parquet(tmp_path / "local" / "scores.parquet")
    b = pd.read_parquet(tmp_path / "spark" / "scores.parquet")
    columns = ["path", "folder", "top_tag", "error"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    assert (a["top_probability"] - b["top_probability"]).abs().max() < 1e-5
    assert '"master": "local[2]"' in (tmp_path / "spark" / "run.json").read_text()
