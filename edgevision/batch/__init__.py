"""Batch scoring of image archives: `edgevision score` (local process pool or Apache Spark) and `edgevision summarize`.

Both engines call `edgevision.batch.scoring`, which uses the one scoring core (`edgevision.models`), so a file
scores the same here as in the scoring service. Heavy imports (pandas, pyarrow, pyspark) stay inside functions.
"""
