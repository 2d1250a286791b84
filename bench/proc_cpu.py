"""CPU seconds of the benchmark's processes, read from /proc: a server's process tree, PostgreSQL's
backends, RQ workers (with the children they reaped) and this process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from bench.common import BenchEnv
from bench.surveys_inprocess import CLOCK_TICKS, backend_cpu_by_pid


class Runs(Protocol):
    def run(self) -> float: ...


class CpuMeter:
    """CPU seconds each phase cost gunicorn (master and workers), the bench database's PostgreSQL
    backends, the RQ worker (with the children it reaped: `--fork`'s per-job processes) and this
    process (the client threads), read from /proc around the phase."""

    def __init__(self, env: BenchEnv, server_pid: int, worker_pids: list[int]) -> None:
        self.env, self.server_pid, self.worker_pids = env, server_pid, worker_pids
        self.phases: list[dict[str, float]] = []

    def _snapshot(self) -> dict[str, dict[int, float]]:
        tree = [self.server_pid, *children(self.server_pid)]
        return {
            "web": {pid: process_cpu(pid) for pid in tree},
            "postgres": backend_cpu_by_pid(self.env),
            "client": {0: time.process_time()},
            "worker": {pid: process_cpu(pid, reaped=True) for pid in self.worker_pids},
        }

    def measure(self, load: Runs) -> float:
        before = self._snapshot()
        seconds = load.run()
        after = self._snapshot()
        # Per process: one that started during the phase counts from zero; one that ended during
        # it (a backend the pool closed) is left out rather than counted negative.
        self.phases.append(
            {key: sum(cpu - before[key].get(pid, 0.0) for pid, cpu in after[key].items()) for key in after}
        )
        return seconds


def process_cpu(pid: int, *, reaped: bool = False) -> float:
    """User + system seconds of `pid`; with `reaped`, also of the children it has waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # gone
    return sum(int(f) for f in fields[11 : 15 if reaped else 13]) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def workers_cpu(pids: list[int]) -> float:
    """CPU seconds of these workers and the children (job processes) they reaped."""
    return sum(process_cpu(pid, reaped=True) for pid in pids)
