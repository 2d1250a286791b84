"""Start N `python -m bench.worker` processes, release them together, collect their stats."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis


@dataclass
class WorkerPool:
    redis: Redis
    env: dict[str, str]
    workdir: Path
    count: int
    worker_class: str = "simple"
    profile: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ready_key(self) -> str:
        return f"bench:{self.run_id}:ready"

    @property
    def go_key(self) -> str:
        return f"bench:{self.run_id}:go"

    def stats_file(self, i: int) -> Path:
        return self.workdir / f"worker-{self.run_id}-{i}.json"

    def profile_file(self, i: int) -> Path:
        return self.workdir / f"worker-{self.run_id}-{i}.prof"

    def log_file(self, i: int) -> Path:
        return self.workdir / f"worker-{self.run_id}-{i}.log"

    def start(self, timeout: float = 120.0) -> None:
        """Spawn the workers and block until each has built its app and is waiting for go."""
        for i in range(self.count):
            command = [
                sys.executable,
                "-m",
                "bench.worker",
                "--ready-key",
                self.ready_key,
                "--go-key",
                self.go_key,
                "--stats-file",
                str(self.stats_file(i)),
                "--worker-class",
                self.worker_class,
            ]
            if self.profile:
                command += ["--profile", str(self.profile_file(i))]
            with self.log_file(i).open("wb") as log:
                self.processes.append(
                    subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
                )
        deadline = time.monotonic() + timeout
        for _ in range(self.count):
            left = max(1, int(deadline - time.monotonic()))
            if self.redis.blpop([self.ready_key], timeout=left) is None:
                self.stop()
                raise RuntimeError(f"workers not ready within {timeout}s; see {self.workdir}/worker-*.log")

    def go(self) -> float:
        """Release every worker at once; returns the wall-clock time of the signal."""
        now = time.time()
        self.redis.rpush(self.go_key, *(["go"] * self.count))
        return now

    def alive(self) -> int:
        return sum(1 for p in self.processes if p.poll() is None)

    def wait(self, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Wait for the burst workers to exit; return their stats (one dict per worker)."""
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.terminate()
                process.wait(timeout=10)
        stats = []
        for i, process in enumerate(self.processes):
            path = self.stats_file(i)
            if process.returncode != 0 or not path.exists():
                tail = self.log_file(i).read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"worker {i} exited with {process.returncode}:\n{tail}")
            stats.append(json.loads(path.read_text(encoding="utf-8")))
        return stats

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
