"""Set-up for a long-lived server process (a gunicorn worker, `northstar worker`)."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Move what start-up made (modules, classes, the app, the ORM's mappers: ~150,000 objects)
    out of the cyclic garbage collector's reach, as `gc.freeze()` is meant for.

    A full collection walks every tracked object; with start-up's included, each took 66 ms here
    and blocked the process meanwhile. In the worker, a batch of the `rules` job leaves a few
    thousand ORM objects alive until it commits, enough to trigger one every few batches: 30 % of
    the job's CPU in-process (bench/RESULTS.md, ADR 0012). After the freeze a full collection walks
    only what was made since, and still frees every cycle made since. Call it once, when start-up
    is done; never in tests, whose apps come and go."""
    gc.collect()
    gc.freeze()
