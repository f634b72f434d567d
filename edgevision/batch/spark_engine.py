"""The Spark engine: `binaryFile` in, `mapInPandas` (Arrow) through the one scoring core, Parquet out.

- The model is read on the driver and shipped once as a broadcast; each Python worker writes it to a private
  temp folder, opens one onnxruntime session (1 intra-op thread: Spark already runs one worker per core) and
  keeps it in a module-level cache for every later task, so no task reloads it.
- Small files: Spark's defaults count 4 MB per opened file and make hundreds of tiny tasks out of thousands
  of 100 kB images; we lower `openCostInBytes` and ask for a few partitions per core instead.
- Workers return probabilities as array<float>; the tag -> probability map is built in the JVM, so tag
  names never travel through Arrow once per row.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevision.batch.output import CSV, SCORES, OutputError, write_run
from edgevision.batch.scoring import COLUMNS, ModelInfo, display_path, relative_folder, score_contents
from edgevision.batch.settings import BatchSettings
from edgevision.batch.sources import SourceError, is_remote, spark_source
from edgevision.errors import EdgeVisionError
from edgevision.models import ImageModel, load_model

log = logging.getLogger(__name__)
MIN_JAVA = 17
WORKER_SCHEMA = "path string, folder string, top_tag string, top_probability float, probs array<float>, error string"


class SparkUnavailable(EdgeVisionError):
    """pyspark or a suitable Java is missing; the message says what to install."""


class SparkJobError(EdgeVisionError):
    """Spark could not run the job (bad path, unreachable master, ...); the message is Spark's, on one line."""


# -- preflight ---------------------------------------------------------------------------------------------------


def check_spark_available(environ: dict[str, str] | None = None, *, java: bool = True) -> None:
    """Fail fast, before any JVM starts, when pyspark (with pandas + pyarrow) or Java 17+ is missing.
    `java=False` when a session already runs (a notebook's): its JVM is whatever the platform chose."""
    environ = dict(os.environ if environ is None else environ)
    for module in ("pyspark", "pandas", "pyarrow"):
        try:
            __import__(module)
        except ImportError:
            raise SparkUnavailable(
                f"--engine spark needs {module}, which is not installed: pip install 'edgevision[spark]'"
                " (or use --engine local)"
            ) from None
    if not java or environ.get("PYSPARK_GATEWAY_PORT"):
        return  # spark-submit or a notebook already started the JVM
    java_path = find_java(environ)
    if java_path is None:
        raise SparkUnavailable(
            f"--engine spark needs Java {MIN_JAVA}+, but JAVA_HOME is unset and there is no java on PATH:"
            " run scripts/setup.sh test or apt-get install openjdk-17-jre-headless (or use --engine local)"
        )
    major = java_major(java_path)
    if major is None or major < MIN_JAVA:
        found = f"Java {major}" if major else "a java that does not report its version"
        raise SparkUnavailable(
            f"--engine spark needs Java {MIN_JAVA}+, found {found} at {java_path}: install openjdk-17-jre-headless"
            " and point JAVA_HOME at it (or use --engine local)"
        )


def find_java(environ: dict[str, str]) -> str | None:
    """The java Spark's launcher will run: $JAVA_HOME/bin/java, else java on PATH."""
    home = environ.get("JAVA_HOME")
    if home:
        candidate = Path(home, "bin", "java")
        return str(candidate) if candidate.is_file() else None
    return shutil.which("java", path=environ.get("PATH", os.defpath))


def java_major(java: str) -> int | None:
    """17 for `openjdk version "17.0.15"`, 8 for `java version "1.8.0_381"`."""
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


# -- the worker side ---------------------------------------------------------------------------------------------

_worker_models: dict[str, ImageModel] = {}  # sha256 -> model, one per Python worker process
_worker_loads = 0  # how many times this worker process loaded a model (diagnostics; see worker_report)


@dataclass(frozen=True)
class ShippedModel:
    """A model folder as bytes, so workers need no access to the driver's disk."""

    sha256: str
    folder_name: str  # keeps the model's name (and so model_id) identical on the workers
    files: dict[str, bytes]

    @classmethod
    def of(cls, model: ImageModel) -> ShippedModel:
        files = {"model.onnx": model.path.read_bytes()}
        labels = model.path.parent / "labels.txt"
        if labels.is_file():
            files["labels.txt"] = labels.read_bytes()
        return cls(model.sha256, model.path.parent.name, files)

    def load(self) -> ImageModel:
        with tempfile.TemporaryDirectory(prefix="edgevision-model-") as temp:
            folder = Path(temp, self.folder_name)
            folder.mkdir()
            for name, data in self.files.items():
                (folder / name).write_bytes(data)
            return load_model(folder, intra_op_threads=1)  # the session holds the weights; the files can go


def worker_model(sha256: str, broadcast) -> ImageModel:
    """This worker's model, loaded from the broadcast on its first task only."""
    global _worker_loads
    model = _worker_models.get(sha256)
    if model is None:
        model = _worker_models[sha256] = broadcast.value.load()
        _worker_loads += 1
    return model


def worker_report(frames: Iterator):
    """A `mapInPandas` function for diagnostics: which Python worker ran the task and how many models it has
    loaded so far (schema "pid long, loads long")."""
    import pandas as pd

    for _ in frames:
        pass
    yield pd.DataFrame({"pid": [os.getpid()], "loads": [_worker_loads]})


class PartitionScorer:
    """The `mapInPandas` function: binaryFile rows (path, content) -> scored rows (WORKER_SCHEMA)."""

    def __init__(self, model_sha: str, broadcast, root: str, batch_size: int) -> None:
        self.model_sha = model_sha
        self.broadcast = broadcast
        self.root = root
        self.batch_size = batch_size

    def __call__(self, frames: Iterator):
        import pandas as pd

        model = worker_model(self.model_sha, self.broadcast)
        for frame in frames:
            scores = score_contents(model, list(frame["content"]), self.batch_size)
            tags, best = scores.top(model.labels)
            ok = np.array([e is None for e in scores.errors], bool)
            paths = [display_path(p) for p in frame["path"]]
            yield pd.DataFrame(
                {
                    "path": paths,
                    "folder": [relative_folder(p, self.root) for p in paths],
                    "top_tag": pd.Series(tags, dtype=object),
                    "top_probability": pd.array(np.where(ok, best, np.nan), dtype="Float32"),
                    "probs": pd.Series(
                        [row if good else None for row, good in zip(scores.probabilities, ok, strict=True)]
                    ),
                    "error": pd.Series(scores.errors, dtype=object),
                }
            )


# -- the driver side ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparkResult:
    images: int
    errors: int
    session_seconds: float  # starting (or attaching to) the Spark session
    job_seconds: float  # reading, scoring, writing
    partitions: int
    master: str
    output: str
    model: ImageModel


def spark_session(master: str | None = None, conf: dict[str, str] | None = None):
    """The active session if there is one (notebooks, spark-submit, tests), else a new one: `master`, else
    spark-submit's master, else `local[*]`."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    builder = SparkSession.builder.appName("edgevision score")
    if master:
        builder = builder.master(master)
    elif not os.environ.get("PYSPARK_GATEWAY_PORT"):
        builder = builder.master("local[*]")
    if (master or "local").startswith("local") and not os.environ.get("PYSPARK_GATEWAY_PORT"):
        # Local workers must run this interpreter (the one with edgevision), not whatever python3 is on PATH;
        # pyspark reads only the environment variable for that.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = builder.config("spark.ui.showConsoleProgress", "true").config("spark.python.worker.reuse", "true")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # py4j / Spark errors: show the first line, not a JVM stack trace
        raise SparkJobError(f"cannot start Spark: {_first_line(exc)}") from None
    session.sparkContext.setLogLevel("ERROR")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its INFO lines are about sockets, not the job
    return session


def score_spark(
    source: str,
    out: str,
    *,
    settings: BatchSettings,
    master: str | None = None,
    csv: bool = False,
    overwrite: bool = False,
    conf: dict[str, str] | None = None,
    session=None,
) -> SparkResult:
    """Score SOURCE with Spark and write OUT/scores.parquet (and OUT/scores.csv)."""
    check_spark_available(java=session is None and not _active_session())
    model = load_model(settings.model_dir, intra_op_threads=1)  # fails here, before Spark, on a bad model
    info = ModelInfo.of(model)
    plan = spark_source(source)
    out = out if is_remote(out) else os.path.abspath(out)
    started = time.perf_counter()
    spark = session or spark_session(master or settings.spark_master, conf)
    session_seconds = time.perf_counter() - started
    sc = spark.sparkContext
    if not sc.master.startswith("local"):
        ship_package(sc)
    previous = _tune(spark, settings)
    shipped = sc.broadcast(ShippedModel.of(model))
    scored = None
    try:
        reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true")
        if plan.glob_filter:
            reader = reader.option("pathGlobFilter", plan.glob_filter)
        files = reader.load(plan.load_path)
        listed = [_unquote(uri) for uri in files.inputFiles()]
        log.debug("listed %d files in %.1f s", len(listed), time.perf_counter() - started - session_seconds)
        if not listed:
            raise SourceError(f"{source}: no files to score (names starting with '.' or '_' are skipped)")
        partitions = files.rdd.getNumPartitions()
        scorer = PartitionScorer(model.sha256, shipped, qualified(spark, plan.root), settings.batch_size)
        scored = files.select("path", "content").mapInPandas(scorer, WORKER_SCHEMA).persist()
        images, errors = scored.selectExpr("count(*)", "count(error)").first()
        log.debug("scored %d files in %d partitions: %.1f s", images, partitions, time.perf_counter() - started)
        if images < len(listed):  # Spark's scan skips empty files; they still get their error row
            scored = scored.unionByName(_empty_file_rows(spark, scored, listed, model, scorer.root))
            errors += len(listed) - images
            images = len(listed)
        # Sort the compact rows (probability arrays), then build the tag maps: a much smaller shuffle.
        table = _output_columns(scored.orderBy("path"), info)
        mode = "overwrite" if overwrite else "errorifexists"
        table.write.mode(mode).parquet(_join(out, SCORES))
        log.debug("wrote the scores: %.1f s", time.perf_counter() - started)
        if csv:
            _csv_columns(table).coalesce(1).write.mode(mode).options(header="true", escape='"').csv(_join(out, CSV))
    except EdgeVisionError:
        raise
    except Exception as exc:
        raise _job_error(exc, source, out) from None
    finally:
        if scored is not None:
            scored.unpersist()
        shipped.unpersist()
        _restore(spark, previous)
    job_seconds = time.perf_counter() - started - session_seconds
    write_run(
        out,
        source=source,
        engine="spark",
        model=model,
        images=images,
        errors=errors,
        seconds=session_seconds + job_seconds,
        master=sc.master,
        partitions=partitions,
        sparkSessionSeconds=round(session_seconds, 3),
        sparkJobSeconds=round(job_seconds, 3),
    )
    return SparkResult(
        images,
        errors,
        session_seconds,
        job_seconds,
        partitions,
        sc.master,
        out,
        model,
    )


def _empty_file_rows(spark, scored, listed: list[str], model: ImageModel, root: str):
    """Error rows for listed files the scan never produced (zero-length files), with the local engine's error."""
    seen = set(scored.select("path").toPandas()["path"])
    missing = sorted(set(display_path(p) for p in listed) - seen)
    error = score_contents(model, [b""]).errors[0]
    rows = [(p, relative_folder(p, root), None, None, None, error) for p in missing]
    return spark.createDataFrame(rows, WORKER_SCHEMA)


def _unquote(uri: str) -> str:
    """inputFiles() gives URIs (`%20`); the binaryFile `path` column gives the decoded form."""
    from urllib.parse import unquote

    return unquote(uri)


def _active_session() -> bool:
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession() is not None


def _tune(spark, settings: BatchSettings) -> dict[str, str | None]:
    """Partitions sized for images: about `tasks_per_core` per core, never 4 MB of 'open cost' per file.
    Returns the previous values: a notebook's session gets its own settings back after the job."""
    cores = spark.sparkContext.defaultParallelism
    wanted = {
        "spark.sql.files.maxPartitionBytes": settings.spark_max_partition_bytes,
        "spark.sql.files.openCostInBytes": settings.spark_open_cost_bytes,
        "spark.sql.files.minPartitionNum": max(1, cores * settings.spark_tasks_per_core),
        "spark.sql.execution.arrow.maxRecordsPerBatch": settings.spark_records_per_batch,
    }
    previous = {key: spark.conf.get(key, None) for key in wanted}
    for key, value in wanted.items():
        spark.conf.set(key, str(value))
    return previous


def _restore(spark, previous: dict[str, str | None]) -> None:
    for key, value in previous.items():
        if value is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, value)


def _output_columns(scored, info: ModelInfo):
    from pyspark.sql import functions as F

    keys = F.array(*[F.lit(label) for label in info.labels])
    columns = {
        "path": F.col("path"),
        "folder": F.col("folder"),
        "top_tag": F.col("top_tag"),
        "top_probability": F.col("top_probability"),
        "probabilities": F.when(F.col("probs").isNotNull(), F.map_from_arrays(keys, F.col("probs"))),
        "model_id": F.lit(info.model_id),
        "project_id": F.lit(info.project_id),
        "iteration_id": F.lit(info.iteration_id),
        "error": F.col("error"),
    }
    return scored.select(*[columns[name].alias(name) for name in COLUMNS])


def _csv_columns(table):
    from pyspark.sql import functions as F

    return table.withColumn("probabilities", F.to_json("probabilities"))


def qualified(spark, root: str) -> str:
    """`root` as Spark will print file paths (e.g. file:/abs/dir), so workers can make them relative."""
    try:
        jvm = spark.sparkContext._jvm
        path = jvm.org.apache.hadoop.fs.Path(root)
        fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        return str(fs.makeQualified(path).toString())
    except Exception:  # no JVM access (e.g. Spark Connect): compare as given
        return root


def ship_package(sc) -> None:
    """Send this edgevision (code only, no bundled weights) to the executors with addPyFile, so the cluster
    runs the driver's version; its dependencies (numpy, pillow, onnxruntime, pandas, pyarrow) must be there."""
    import edgevision

    package = Path(edgevision.__file__).parent
    archive = Path(tempfile.mkdtemp(prefix="edgevision-pyfiles-"), "edgevision.zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in package.rglob("*.py"):
            zf.write(file, file.relative_to(package.parent).as_posix())
    sc.addPyFile(str(archive))


def _join(out: str, name: str) -> str:
    return out.rstrip("/") + "/" + name


def _first_line(exc: Exception) -> str:
    """One line for a user: a Python worker's own exception line if there is one, else Spark's message."""
    text = str(getattr(exc, "desc", None) or exc)
    raised = re.findall(r"^(\w+(?:Error|Exception): .+)$", text, re.MULTILINE)
    if "Traceback" in text and raised:
        return raised[-1].strip()[:400]
    text = " ".join(text.split())
    return re.sub(r"\s*(JVM stacktrace|Traceback).*", "", text)[:400]


def _job_error(exc: Exception, source: str, out: str) -> EdgeVisionError:
    text = _first_line(exc)
    if "PATH_NOT_FOUND" in text or "Path does not exist" in text:
        return SourceError(f"{source}: no such file, folder or glob match")
    if "PATH_ALREADY_EXISTS" in text or "already exists" in text:
        return OutputError(f"{out}/{SCORES} already exists; pass --overwrite to replace it")
    return SparkJobError(f"the Spark job failed: {text}")
