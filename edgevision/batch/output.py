"""The output folder OUT: `scores.parquet` (+ `scores.csv` with --csv), `run.json`, and the summaries.

The local engine writes single files; Spark writes each as a folder of part files (its native layout), which
pandas, pyarrow, DuckDB and Spark all read as one table. Rows are sorted by path either way.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgevision.batch.scoring import COLUMNS, ModelInfo, Scores
from edgevision.errors import EdgeVisionError

SCORES = "scores.parquet"
CSV = "scores.csv"
RUN = "run.json"


class OutputError(EdgeVisionError):
    """OUT cannot be written (it exists and --overwrite was not given, or it is not writable)."""


def prepare(out: str, overwrite: bool, csv: bool) -> None:
    """Refuse to clobber an earlier run unless asked; create OUT."""
    targets = [os.path.join(out, SCORES)] + ([os.path.join(out, CSV)] if csv else [])
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]} already exists; pass --overwrite to replace it")
    for target in existing:
        shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the output folder: {exc.strerror or exc}") from None


def scores_table(paths: Sequence[str], folders: Sequence[str], scores: Scores, info: ModelInfo):
    """The output rows as an Arrow table (COLUMNS order); `probabilities` is a map<string, float>."""
    import pyarrow as pa

    n, tags = len(paths), len(info.labels)
    top_tags, top_probability = scores.top(info.labels)
    ok = np.array([e is None for e in scores.errors], bool)
    offsets = np.zeros(n + 1, np.int32)
    offsets[1:] = np.cumsum(np.where(ok, tags, 0))
    keys = pa.array(np.tile(np.array(info.labels, object), int(ok.sum())), pa.string())
    values = pa.array(scores.probabilities[ok].reshape(-1), pa.float32())
    offsets_array = pa.array(offsets, pa.int32(), mask=np.append(~ok, False))
    probabilities = pa.MapArray.from_arrays(offsets_array, keys, values)
    columns = {
        "path": pa.array(paths, pa.string()),
        "folder": pa.array(folders, pa.string()),
        "top_tag": pa.array(top_tags, pa.string()),
        "top_probability": pa.array(top_probability, pa.float32(), from_pandas=True),
        "probabilities": probabilities,
        "model_id": pa.array([info.model_id] * n, pa.string()),
        "project_id": pa.array([info.project_id] * n, pa.string()),
        "iteration_id": pa.array([info.iteration_id] * n, pa.string()),
        "error": pa.array(scores.errors, pa.string()),
    }
    return pa.table([columns[c] for c in COLUMNS], names=list(COLUMNS))


class LocalWriter:
    """Streams sorted row batches into OUT/scores.parquet (and scores.csv), so memory stays flat however many
    files are scored. Files are written under a temporary name and renamed when complete: a failed run leaves
    no half-written table behind."""

    ROW_GROUP = 8192  # rows buffered per Parquet row group

    def __init__(self, out: str, csv: bool) -> None:
        self.out, self.csv = out, csv
        self._buffer: list = []
        self._buffered = 0
        self._parquet = self._csv = None

    def __enter__(self) -> LocalWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(complete=kind is None)

    def write(self, table) -> None:
        self._buffer.append(table)
        self._buffered += table.num_rows
        if self._buffered >= self.ROW_GROUP:
            self._flush()

    def close(self, complete: bool = True) -> None:
        if complete:
            self._flush()
        for writer in (self._parquet, self._csv):
            if writer is not None:
                writer.close()
        for name in (SCORES, CSV):
            partial = self._partial(name)
            if not os.path.exists(partial):
                continue
            if complete:
                os.replace(partial, os.path.join(self.out, name))
            else:
                os.remove(partial)

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.csv
        import pyarrow.parquet as pq

        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer)
        self._buffer, self._buffered = [], 0
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._partial(SCORES), table.schema)
        self._parquet.write_table(table)
        if self.csv:
            rows = csv_table(table)
            if self._csv is None:
                self._csv = pyarrow.csv.CSVWriter(self._partial(CSV), rows.schema)
            self._csv.write_table(rows)

    def _partial(self, name: str) -> str:
        return os.path.join(self.out, f".{name}.partial")


def csv_table(table):
    """CSV has no map type: `probabilities` becomes a JSON object string."""
    import pyarrow as pa

    column = table.column("probabilities").to_pylist()
    as_json = [None if m is None else json.dumps(dict(m), separators=(",", ":")) for m in column]
    index = table.schema.get_field_index("probabilities")
    return table.set_column(index, "probabilities", pa.array(as_json, pa.string()))


def write_run(out: str, *, source: str, engine: str, model, images: int, errors: int, seconds: float, **extra) -> None:
    """`run.json`: what was scored with which model and engine, and how long it took (local OUT only)."""
    if not os.path.isdir(out):
        return
    details = {
        "source": source,
        "engine": engine,
        "model": model.describe(),
        "labels": list(model.labels),
        "images": images,
        "errors": errors,
        "seconds": round(seconds, 3),
        "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    Path(out, RUN).write_text(json.dumps(details, indent=2) + "\n", encoding="utf-8")


def scores_path(out: str) -> Path:
    """The Parquet table of a run: OUT/scores.parquet, or OUT itself when it is the table."""
    path = Path(out)
    if (path / SCORES).exists():
        return path / SCORES
    if path.suffix == ".parquet" and path.exists():
        return path
    raise OutputError(f"{out}: no {SCORES} here; run `edgevision score SOURCE --out {out}` first")
