"""Entry point for `spark-submit` (clusters, or local[N] without the `edgevision` command):

    spark-submit --master local[2] $(python -c 'import edgevision.batch.spark_job as j; print(j.__file__)') \\
        SOURCE --out OUT [--model DIR] [--csv] [--overwrite]

Same options as `edgevision score --engine spark`; the master comes from spark-submit unless --master is given.
Also runs as `python -m edgevision.batch.spark_job ...`.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from edgevision.batch.cli import add_score_arguments, run_score
    from edgevision.cli import configure_logging
    from edgevision.errors import EdgeVisionError

    parser = argparse.ArgumentParser(prog="edgevision-spark-job", description=__doc__.splitlines()[0])
    add_score_arguments(parser, engine=False)
    args = parser.parse_args(argv)
    args.engine, args.command = "spark", "score"
    configure_logging()
    try:
        return run_score(args)
    except EdgeVisionError as exc:
        print(f"edgevision score: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
