"""The local engine's streaming writer: row groups in order, CSV beside, nothing half-written on failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from edgevision.batch.output import LocalWriter, scores_table
from edgevision.batch.scoring import ModelInfo, Scores

INFO = ModelInfo("landuse@0123456789ab", "project-id", "iteration-id", ("Barren", "Cultivated", "Developed"))


def chunk(start: int, size: int, bad: int | None = None) -> object:
    rng = np.random.default_rng(start)
    probs = rng.dirichlet(np.ones(3), size).astype(np.float32)
    errors = [None] * size
    if bad is not None:
        probs[bad] = np.nan
        errors[bad] = "BadRequestImageFormat: the image is empty (0 bytes)"
    paths = [f"/tiles/a/{i:05d}.png" for i in range(start, start + size)]
    return scores_table(paths, ["a"] * size, Scores(probs, errors), INFO)


def test_chunks_stream_into_row_groups_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalWriter, "ROW_GROUP", 10)
    parts = [chunk(0, 6), chunk(6, 6, bad=2), chunk(12, 6)]
    with LocalWriter(str(tmp_path), csv=True) as writer:
        for part in parts:
            writer.write(part)
    table = pq.read_table(tmp_path / "scores.parquet")
    assert pq.ParquetFile(tmp_path / "scores.parquet").metadata.num_row_groups == 2
    assert table.column("path").to_pylist() == [f"/tiles/a/{i:05d}.png" for i in range(18)]
    frame = table.to_pandas()
    assert frame["error"].notna().sum() == 1 and frame.loc[8, "probabilities"] is None
    row = dict(frame.loc[0, "probabilities"])
    assert frame.loc[0, "top_tag"] == max(row, key=row.get)
    csv = pd.read_csv(tmp_path / "scores.csv")
    assert len(csv) == 18 and json.loads(csv.loc[0, "probabilities"]) == pytest.approx(row)
    assert not list(tmp_path.glob(".*partial"))


def test_a_failed_run_leaves_no_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LocalWriter, "ROW_GROUP", 4)
    with pytest.raises(KeyboardInterrupt), LocalWriter(str(tmp_path), csv=True) as writer:
        writer.write(chunk(0, 6))  # flushed: a partial file exists now
        assert list(tmp_path.glob(".*partial"))
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
