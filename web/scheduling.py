"""CLI glue for the scheduler loop."""

from __future__ import annotations

import signal
import sys
from types import FrameType

from flask import Flask

from campaigns.ticker import scheduler_loop as run_loop


def scheduler_loop(app: Flask, *, interval: float, once: bool) -> None:
    runner = app.extensions["northstar.jobs"]
    # A process manager stops the scheduler with SIGTERM; ending through SystemExit runs the loop's
    # `finally`, so the lock is released at once instead of blocking a restart for its TTL.
    signal.signal(signal.SIGTERM, _exit_on_term)
    run_loop(app.extensions["northstar.db"], runner.redis, interval=interval, once=once)


def _exit_on_term(signum: int, frame: FrameType | None) -> None:
    sys.exit(128 + signum)
