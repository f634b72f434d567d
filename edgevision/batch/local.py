"""The local engine: a pool of processes over this machine's cores, each loading the model once.

Files are handed out in sorted chunks (`imap` keeps their order), so the output needs no sort. Each worker
runs onnxruntime with one intra-op thread: N processes x 1 thread beats 1 process x N threads for many small
images, and never oversubscribes the cores.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from edgevision.batch.scoring import ModelInfo, Scores, read_file, relative_folder, score_contents
from edgevision.errors import EdgeVisionError
from edgevision.models import ImageModel, load_model

_model: ImageModel | None = None  # the worker process's model, loaded once by _init_worker
_batch_size = 32


class ScoringProcessDied(EdgeVisionError):
    """A worker process was killed (usually by the out-of-memory killer)."""


@dataclass(frozen=True)
class LocalResult:
    images: int
    errors: int
    seconds: float
    workers: int
    model: ImageModel


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def score_local(
    root: str,
    files: Sequence[str],
    model_path: str | None,
    out: str,
    *,
    csv: bool = False,
    workers: int = 0,
    batch_size: int = 32,
    chunk_size: int = 64,
    progress: bool | None = None,
) -> LocalResult:
    """Score `files` (absolute, sorted) into OUT/scores.parquet (and scores.csv), streaming: results are
    written chunk by chunk in file order, never held all at once."""
    from tqdm import tqdm

    from edgevision.batch.output import LocalWriter, scores_table

    started = time.perf_counter()
    model = load_model(model_path, intra_op_threads=1)
    info = ModelInfo.of(model)
    workers = workers or available_cores()
    # Several chunks per worker so a slow chunk at the end does not leave the other cores idle.
    size = max(1, min(chunk_size, -(-len(files) // (workers * 4))))
    chunks = [list(files[i : i + size]) for i in range(0, len(files), size)]
    workers = max(1, min(workers, len(files) // max(1, batch_size)))
    errors = 0
    with (
        LocalWriter(out, csv) as writer,
        tqdm(total=len(files), unit="img", desc="scoring", disable=progress is False or None) as bar,
    ):
        for chunk, scores in zip(chunks, _run_chunks(chunks, model, model_path, workers, batch_size), strict=True):
            folders = [relative_folder(f, root) for f in chunk]
            writer.write(scores_table(chunk, folders, scores, info))
            errors += sum(e is not None for e in scores.errors)
            bar.update(len(chunk))
    return LocalResult(len(files), errors, time.perf_counter() - started, workers, model)


def _run_chunks(
    chunks: list[list[str]], model: ImageModel, model_path: str | None, workers: int, batch_size: int
) -> Iterator[Scores]:
    if workers <= 1:  # too little work to pay for starting processes
        yield from (score_contents(model, [read_file(p) for p in chunk], batch_size) for chunk in chunks)
        return
    # spawn, not fork: the parent has onnxruntime loaded, and forked runtimes are not safe. An executor (not a
    # multiprocessing.Pool) so a worker killed by the OS (out of memory) fails the run instead of hanging it.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, _init_worker, (model_path, batch_size)) as pool:
        try:
            yield from pool.map(_score_chunk, chunks)
        except BrokenProcessPool:
            raise ScoringProcessDied(
                "a scoring process died (out of memory?); try fewer --workers or a smaller --batch-size"
            ) from None


def _init_worker(model_path: str | None, batch_size: int) -> None:
    global _model, _batch_size
    _model = load_model(model_path, intra_op_threads=1)
    _batch_size = batch_size


def _score_chunk(paths: list[str]) -> Scores:
    assert _model is not None, "the worker was not initialised"
    return score_contents(_model, [read_file(p) for p in paths], _batch_size)
