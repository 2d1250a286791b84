"""A benchmark RQ worker process: `python -m bench.worker --ready-key K --go-key G --stats-file F`.

It builds the same app as the benchmark from NORTHSTAR_* variables (create_app reads them), says it
is ready (RPUSH ready-key), waits for the go signal (BLPOP go-key) so that process start-up is not
timed, drains the queue in burst mode, then writes its counters and peak RSS as JSON.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

from redis import Redis
from rq import SimpleWorker, Worker


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("--queue", default="delivery")
    parser.add_argument("--ready-key", required=True)
    parser.add_argument("--go-key", required=True)
    parser.add_argument("--stats-file", required=True, type=Path)
    parser.add_argument(
        "--worker-class",
        choices=("fork", "simple"),
        default="simple",
        help="simple: jobs in this process, as `northstar worker` runs them; fork: `northstar worker --fork`",
    )
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the work loop into this file")
    parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the go signal")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from web import create_app
    from web.cli import prepare_worker_process

    app = create_app()
    prepare_worker_process(app)  # exactly what `northstar worker` does before it starts
    logging.getLogger().setLevel(logging.WARNING)
    redis_url = app.extensions["northstar.settings"].redis_url
    redis = Redis.from_url(redis_url)
    worker_class = SimpleWorker if args.worker_class == "simple" or args.profile else Worker
    worker = worker_class([args.queue], connection=redis)
    redis.rpush(args.ready_key, os.getpid())
    if redis.blpop([args.go_key], timeout=args.wait) is None:
        print("bench.worker: no go signal, exiting", file=sys.stderr)
        return 3
    started = time.time()
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    worker.work(burst=True, logging_level="WARNING")
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(args.profile))
    ended = time.time()
    stats = {
        "pid": os.getpid(),
        "worker_class": worker_class.__name__,
        "started": started,
        "ended": ended,
        "successful_jobs": worker.successful_job_count,
        "failed_jobs": worker.failed_job_count,
        # ru_maxrss is in KiB on Linux; children = the forked work horses (largest one waited for)
        "maxrss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "maxrss_children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }
    args.stats_file.write_text(json.dumps(stats), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
