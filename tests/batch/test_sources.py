"""What SOURCE means for each engine, and the small path rules both engines share."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgevision.batch.scoring import relative_folder
from edgevision.batch.sources import SourceError, local_files, spark_source
from edgevision.batch.spark_engine import java_major
from tests.batch.conftest import HIDDEN


def test_folder_is_read_recursively_without_hidden_files(photo_tree: Path) -> None:
    source = local_files(str(photo_tree))
    assert source.root == str(photo_tree)
    names = [Path(f).relative_to(photo_tree).as_posix() for f in source.files]
    assert names == sorted(names)
    assert "broken/notes.txt" in names and "photos/a photo with spaces.jpg" in names
    assert not set(HIDDEN) & set(names)


def test_recursive_glob(photo_tree: Path) -> None:
    source = local_files(f"{photo_tree}/**/*.jpg")
    assert source.root == str(photo_tree)
    assert source.files and all(f.endswith(".jpg") for f in source.files)
    assert str(photo_tree / "broken" / "empty.jpg") in source.files
    assert not any("_staging" in f for f in source.files)


def test_glob_matching_folders_reads_them(photo_tree: Path) -> None:
    source = local_files(f"{photo_tree}/ph*")
    assert source.files == local_files(str(photo_tree / "photos")).files
    assert source.root == str(photo_tree)


def test_spark_plan_for_recursive_globs(tmp_path: Path) -> None:
    plan = spark_source(f"{tmp_path}/**/*.png")
    assert (plan.load_path, plan.root, plan.glob_filter) == (str(tmp_path), str(tmp_path), "*.png")
    remote = spark_source("abfss://tiles@account.dfs.core.windows.net/county/*/2016")
    assert remote.load_path == "abfss://tiles@account.dfs.core.windows.net/county/*/2016"
    assert remote.root == "abfss://tiles@account.dfs.core.windows.net/county"
    with pytest.raises(SourceError, match="file-name pattern"):
        spark_source("s3a://bucket/**/2016/*.png")


@pytest.mark.parametrize(
    ("path", "root", "folder"),
    [
        ("file:/data/tiles/ca025/2016/a.png", "file:/data/tiles", "ca025/2016"),
        ("/data/tiles/a.png", "/data/tiles/", "."),
        ("abfss://c@a.dfs.core.windows.net/t/x/a.png", "abfss://c@a.dfs.core.windows.net/t", "x"),
        ("hdfs://nn/elsewhere/y/a.png", "file:/data/tiles", "y"),  # not under root: the parent's name
    ],
)
def test_relative_folder(path: str, root: str, folder: str) -> None:
    assert relative_folder(path, root) == folder


def test_java_major_reads_real_java() -> None:
    import shutil

    java = shutil.which("java")
    if java is None:
        pytest.skip("no java on PATH")
    assert java_major(java) >= 8


@pytest.mark.slow
def test_spark_glob_scores_the_same_files_as_the_local_engine(photo_tree: Path, spark, tmp_path: Path) -> None:
    import pandas as pd

    from edgevision.batch.settings import BatchSettings
    from edgevision.batch.spark_engine import score_spark

    pattern = f"{photo_tree}/**/*.jpg"
    before = spark.conf.get("spark.sql.files.openCostInBytes")
    result = score_spark(pattern, str(tmp_path / "out"), settings=BatchSettings(), session=spark)
    frame = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    assert list(frame["path"]) == local_files(pattern).files
    assert result.images == len(frame) and result.errors == 2  # corrupt.jpg, empty.jpg (notes.txt is no .jpg)
    assert spark.conf.get("spark.sql.files.openCostInBytes") == before, "the session's settings are restored"
