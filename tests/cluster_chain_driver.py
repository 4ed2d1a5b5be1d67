"""Run several jobs in one Spark application:
``spark-submit ... cluster_chain_driver.py STEPS CONFIG``.

STEPS is a JSON file: ``[[name, job, [arguments...]], ...]``. Each job's ``main`` runs with the
one session this driver builds from CONFIG's ``[spark]`` (the jobs' own path when a session
is given), so that the
executors start, unpack their Python and warm up once for the whole chain. Writes
``STEPS.result.json``: each step's exit status, seconds and printed output; stops at the first
step that does not exit 0.
"""

from __future__ import annotations

import io
import json
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from job_loader import load_job

from fmagenre.platform.config import load_config
from fmagenre.platform.session import build_session


def main(steps_file: str, config: str) -> int:
    steps = json.loads(Path(steps_file).read_text())
    spark = build_session("fmagenre-cluster-chain", conf=load_config(config).spark)
    results = []
    try:
        for name, job, arguments in steps:
            printed = io.StringIO()
            started = time.monotonic()
            with redirect_stdout(printed):
                code = load_job(job).main(arguments, spark=spark)
            results.append(
                {
                    "name": name,
                    "code": code,
                    "seconds": time.monotonic() - started,
                    "printed": printed.getvalue(),
                }
            )
            Path(f"{steps_file}.result.json").write_text(json.dumps(results, indent=1))
            if code != 0:
                return code
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
