"""Both engines on a few hundred real images: row counts, error rows, equality with each other and with the
real scoring service (to 1e-5), output layout."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import requests

from tests.batch.conftest import BROKEN, HIDDEN, scorable_files

pytestmark = pytest.mark.slow
TOLERANCE = 1e-5


def read_scores(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "scores.parquet")


def probabilities(row) -> dict[str, float]:
    return dict(row["probabilities"])


@pytest.fixture(scope="module", params=["local", "spark"])
def scores(request, image_tree: Path) -> tuple[str, Path, pd.DataFrame]:
    out = request.getfixturevalue(f"{request.param}_out")
    return request.param, out, read_scores(out)


def test_one_row_per_file_sorted_by_path(scores, image_tree: Path) -> None:
    engine, _, frame = scores
    expected = [str(p) for p in scorable_files(image_tree)]
    assert len(expected) > 300, "the tree should hold a few hundred real images"
    assert list(frame["path"]) == expected, engine
    for hidden in HIDDEN:
        assert str(image_tree / hidden) not in set(frame["path"])


def test_folder_is_relative_to_the_source(scores, image_tree: Path) -> None:
    _, _, frame = scores
    for path, folder in zip(frame["path"], frame["folder"], strict=True):
        assert folder == Path(path).parent.relative_to(image_tree).as_posix()
    assert {"tiles/ca025/2016", "tiles/ca037/2016", "broken", "photos"} <= set(frame["folder"])


def test_bad_files_get_error_rows_and_the_rest_none(scores, image_tree: Path) -> None:
    engine, _, frame = scores
    bad = frame[frame["error"].notna()]
    assert sorted(bad["path"]) == sorted(str(image_tree / name) for name in BROKEN), engine
    for _, row in bad.iterrows():
        name = Path(row["path"]).relative_to(image_tree).as_posix()
        assert row["error"].startswith(BROKEN[name] + ": ")
        assert row["top_tag"] is None and pd.isna(row["top_probability"]) and row["probabilities"] is None
    assert "empty" in bad.set_index("path").loc[str(image_tree / "broken/empty.jpg"), "error"]
    good = frame[frame["error"].isna()]
    assert good["top_tag"].notna().all() and good["probabilities"].notna().all()


def test_top_tag_is_the_highest_probability(scores) -> None:
    _, _, frame = scores
    for _, row in frame[frame["error"].isna()].iterrows():
        probs = probabilities(row)
        assert len(probs) == 1000
        assert row["top_tag"] == max(probs, key=probs.get)
        assert row["top_probability"] == pytest.approx(probs[row["top_tag"]], abs=1e-7)


def test_model_columns_name_the_model(scores) -> None:
    from edgevision.models import load_model

    model = load_model(None)
    _, _, frame = scores
    assert set(frame["model_id"]) == {model.model_id}
    assert set(frame["iteration_id"]) == {model.iteration_id} and model.iteration_id
    assert set(frame["project_id"]) == {model.project_id}


def test_engines_agree(local_out: Path, spark_out: Path) -> None:
    local, spark = read_scores(local_out), read_scores(spark_out)
    columns = ["path", "folder", "top_tag", "model_id", "iteration_id", "error"]
    pd.testing.assert_frame_equal(local[columns], spark[columns])
    for (_, a), (_, b) in zip(local.iterrows(), spark.iterrows(), strict=True):
        if a["error"] is None:
            pa, pb = probabilities(a), probabilities(b)
            assert pa.keys() == pb.keys()
            assert max(abs(pa[k] - pb[k]) for k in pa) <= TOLERANCE


@pytest.fixture(scope="module")
def served(image_tree: Path, scoring_service) -> dict[str, requests.Response]:
    """The real `edgevision serve` answer for every file of the tree (POST /image with the file's bytes)."""
    session = requests.Session()
    answers = {}
    for path in scorable_files(image_tree):
        answers[str(path)] = session.post(
            f"{scoring_service.url}/image",
            data=path.read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
            timeout=30,
        )
    return answers


def test_batch_equals_the_scoring_service(scores, served: dict[str, requests.Response]) -> None:
    """The same bytes give the same probabilities (to 1e-5) and the same error codes as the service."""
    engine, _, frame = scores
    assert set(frame["path"]) == set(served)
    for _, row in frame.iterrows():
        response = served[row["path"]]
        if row["error"] is not None:
            assert response.status_code == 400, row["path"]
            assert row["error"].startswith(response.json()["code"] + ": ")
            continue
        assert response.status_code == 200, (row["path"], response.text)
        answer = response.json()
        service = {p["tagName"]: p["probability"] for p in answer["predictions"]}
        batch = probabilities(row)
        assert service.keys() == batch.keys()
        worst = max(abs(service[tag] - batch[tag]) for tag in service)
        assert worst <= TOLERANCE, (engine, row["path"], worst)
        assert answer["predictions"][0]["tagName"] == row["top_tag"]
        assert answer["iteration"] == row["iteration_id"]


def test_csv_mirrors_the_parquet(scores) -> None:
    engine, out, frame = scores
    csv_path = out / "scores.csv"
    files = sorted(csv_path.glob("part-*.csv")) if csv_path.is_dir() else [csv_path]
    table = pd.concat([pd.read_csv(f, keep_default_na=False, na_values=[""]) for f in files], ignore_index=True)
    assert list(table.columns) == list(frame.columns)
    assert list(table["path"]) == list(frame["path"]), engine
    row = frame[frame["error"].isna()].iloc[0]
    decoded = json.loads(table.loc[table["path"] == row["path"], "probabilities"].iloc[0])
    assert decoded == pytest.approx(probabilities(row), abs=1e-7)
    assert table["error"].notna().sum() == len(BROKEN)


def test_run_json_describes_the_run(scores) -> None:
    engine, out, frame = scores
    run = json.loads((out / "run.json").read_text())
    assert run["engine"] == engine and run["images"] == len(frame) and run["errors"] == len(BROKEN)
    assert run["model"]["modelId"] == frame["model_id"].iloc[0]
    assert len(run["labels"]) == 1000


def test_spark_makes_a_few_partitions_per_core(spark_out: Path, spark) -> None:
    """Spark's defaults would cut these few hundred small files by a 4 MB open cost; we ask for ~3 per core."""
    run = json.loads((spark_out / "run.json").read_text())
    cores = spark.sparkContext.defaultParallelism
    assert 2 <= run["partitions"] <= 3 * cores + 1, run["partitions"]


def test_spark_workers_load_the_model_once(photo_tree: Path, spark, tmp_path: Path) -> None:
    """Python workers are reused across tasks and keep their onnxruntime session: right after a job of several
    partitions per worker, no worker has loaded the model more than once."""
    from edgevision.batch.settings import BatchSettings
    from edgevision.batch.spark_engine import score_spark, worker_report

    settings = BatchSettings(spark_tasks_per_core=4)
    result = score_spark(str(photo_tree), str(tmp_path / "out"), settings=settings, session=spark)
    assert result.partitions > spark.sparkContext.defaultParallelism  # more tasks than workers
    rows = spark.range(0, 64, numPartitions=8).mapInPandas(worker_report, "pid long, loads long").collect()
    loads = {row.pid: row.loads for row in rows}
    assert max(loads.values()) == 1, loads
