"""Tuning knobs of the batch engines, one environment variable each; command-line options win over them."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgevision.config import Settings

MB = 1024 * 1024


class BatchSettings(Settings):
    """How `edgevision score` reads, batches and parallelises the work."""

    model_dir: Path | None = Field(
        None,
        description="Model folder (model.onnx + labels.txt) or .onnx file; unset = the bundled ImageNet MobileNetV2.",
        json_schema_extra={"env": "MODEL_DIR"},
    )
    workers: int = Field(
        0,
        ge=0,
        le=256,
        description="Local engine: scoring processes (0 = one per available core).",
        json_schema_extra={"env": "BATCH_WORKERS"},
    )
    batch_size: int = Field(
        32,
        ge=1,
        le=1024,
        description="Images pre-processed and inferred together (one onnxruntime call).",
        json_schema_extra={"env": "BATCH_SIZE"},
    )
    chunk_size: int = Field(
        64,
        ge=1,
        le=100_000,
        description="Local engine: files handed to a worker process per task.",
        json_schema_extra={"env": "BATCH_CHUNK_SIZE"},
    )
    spark_master: str | None = Field(
        None,
        description="Spark master URL; unset = spark-submit's or the cluster's own, else `local[*]`.",
        json_schema_extra={"env": "BATCH_SPARK_MASTER"},
    )
    spark_tasks_per_core: int = Field(
        3,
        ge=1,
        le=100,
        description="Spark: aim for about this many input partitions per core (balance vs. per-task overhead).",
        json_schema_extra={"env": "BATCH_SPARK_TASKS_PER_CORE"},
    )
    spark_max_partition_bytes: int = Field(
        128 * MB,
        ge=MB,
        description="Spark: `spark.sql.files.maxPartitionBytes`, the largest input partition.",
        json_schema_extra={"env": "BATCH_SPARK_MAX_PARTITION_BYTES"},
    )
    spark_open_cost_bytes: int = Field(
        32 * 1024,
        ge=0,
        description="Spark: `spark.sql.files.openCostInBytes`, what opening one file is worth in bytes. Spark's"
        " 4 MB default turns thousands of small images into hundreds of tiny tasks.",
        json_schema_extra={"env": "BATCH_SPARK_OPEN_COST_BYTES"},
    )
    spark_records_per_batch: int = Field(
        256,
        ge=1,
        le=100_000,
        description="Spark: `spark.sql.execution.arrow.maxRecordsPerBatch`, images per Arrow batch sent to Python.",
        json_schema_extra={"env": "BATCH_SPARK_RECORDS_PER_BATCH"},
    )
