"""CLI glue for the scheduler loop."""

from __future__ import annotations

from flask import Flask

from campaigns.ticker import scheduler_loop as run_loop


def scheduler_loop(app: Flask, *, interval: float, once: bool) -> None:
    runner = app.extensions["northstar.jobs"]
    run_loop(app.extensions["northstar.db"], runner.redis, interval=interval, once=once)
