"""`edgevision summarize`: the per-folder counts and shares, recomputed independently from the Parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.batch.conftest import BROKEN, run_cli

pytestmark = pytest.mark.slow


def expected_shares(out: Path, depth: int | None) -> pd.DataFrame:
    """(group, tag) -> count, share, straight from scores.parquet with pandas."""
    frame = pd.read_parquet(out / "scores.parquet")
    folders = frame["folder"] if depth is None else frame["folder"].map(lambda f: "/".join(f.split("/")[:depth]))
    frame = frame.assign(group=folders)
    ok = frame[frame["error"].isna()]
    counts = ok.groupby(["group", "top_tag"]).size().rename("count").reset_index()
    totals = ok.groupby("group").size()
    counts["share"] = counts["count"] / counts["group"].map(totals)
    return counts


@pytest.mark.parametrize(("by", "depth", "name"), [("folder", None, "summary-folder"), ("2", 2, "summary-level2")])
def test_summary_numbers_match_the_scores(local_out: Path, by: str, depth: int | None, name: str) -> None:
    result = run_cli("summarize", str(local_out), "--by", by)
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(local_out / f"{name}.csv", keep_default_na=False, na_values={"share": [""]})
    assert list(table.columns) == ["folder", "images", "errors", "tag", "count", "share"]
    expected = expected_shares(local_out, depth)
    merged = table.merge(expected, left_on=["folder", "tag"], right_on=["group", "top_tag"], how="outer")
    nonzero = merged[merged["count_x"] > 0]
    assert nonzero["count_y"].notna().all(), "a count the scores do not have"
    assert (nonzero["count_x"] == nonzero["count_y"]).all()
    assert (nonzero["share_x"] - nonzero["share_y"]).abs().max() < 1e-6
    assert merged["count_x"].notna().all(), "a (folder, tag) of the scores is missing from the summary"
    errors = table.groupby("folder")["errors"].first()
    assert errors.sum() == len(BROKEN) and errors["broken"] == len(BROKEN)
    shares = table[table["images"] > 0].groupby("folder")["share"].sum()
    assert (shares - 1).abs().max() < 1e-4, "every folder's shares add up to 1 (CSV keeps 6 decimals)"
    with Image.open(local_out / f"{name}.png") as chart:
        assert chart.format == "PNG" and chart.width > 300
    assert "tiles/ca025" in result.stdout and "%" in result.stdout


def test_land_use_shares_per_area(local_out: Path) -> None:
    """`--by 2` groups tiles by area (tiles/ca025, tiles/ca037): one line per area in the printout."""
    result = run_cli("summarize", str(local_out), "--by", "2")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("tiles/")}
    assert set(lines) == {"tiles/ca025", "tiles/ca037"}
    tiles = pd.read_parquet(local_out / "scores.parquet").query("folder.str.startswith('tiles/ca037')")
    assert lines["tiles/ca037"].split()[1] == str(len(tiles))


def test_summary_of_spark_output_matches_local(local_out: Path, spark_out: Path) -> None:
    from edgevision.batch.summary import summarize

    local = summarize(str(local_out), "1").table
    spark = summarize(str(spark_out), "1").table
    pd.testing.assert_frame_equal(local, spark)


def test_bad_level_is_a_one_line_error(local_out: Path) -> None:
    result = run_cli("summarize", str(local_out), "--by", "zero")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--by" in result.stderr


def test_summarize_without_scores_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("summarize", str(tmp_path))
    assert result.returncode == 2
    assert "scores.parquet" in result.stderr and "Traceback" not in result.stderr
