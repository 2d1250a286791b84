"""`python -m bench demo`: wall time of `northstar demo --dir <tmp>` in a clean environment.

No NORTHSTAR_*/SENDGRID_* variables reach the subprocess, so the demo runs as a newcomer's laptop
would: SQLite file, outbox folder, jobs run in-process. No baseline exists; the time is absolute.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench.common import machine, print_table, result_line

SUMMARY = re.compile(r"^demo: (.*)$", re.MULTILINE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accounts", type=int, default=None, help="pass --accounts to the demo")
    parser.add_argument("--timeout", type=float, default=600.0)


def demo_command(directory: str, accounts: int | None) -> list[str]:
    found = shutil.which("northstar")
    command = [found] if found else [sys.executable, "-m", "web.cli"]
    command += ["demo", "--dir", directory]
    if accounts is not None:
        command += ["--accounts", str(accounts)]
    return command


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("NORTHSTAR_", "SENDGRID_", "BENCH_"))}


def run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        command = demo_command(tmp, args.accounts)
        started = time.perf_counter()
        done = subprocess.run(
            command, env=clean_env(), cwd=tmp, capture_output=True, text=True, timeout=args.timeout
        )
        seconds = time.perf_counter() - started
        emails = len(_outbox(tmp))
        shown = " ".join(command).replace(tmp, "<tmp>")
    matches = SUMMARY.findall(done.stdout)
    if done.returncode != 0 or not matches:
        print(done.stdout[-3000:])
        print(done.stderr[-3000:], file=sys.stderr)
        print(f"demo failed (exit {done.returncode}); command: {' '.join(command)}", file=sys.stderr)
        return 1
    summary = dict(pair.split("=", 1) for pair in matches[-1].split())
    rows = [
        ["command", shown],
        ["wall time (s)", f"{seconds:.1f}"],
        *[[k, v] for k, v in summary.items()],
        ["outbox .eml files", emails],
    ]
    print_table(f"demo — clean environment, {machine()}, load avg {load_before:.1f}", ["", "value"], rows)
    print(f"demo summary line: demo: {matches[-1]}")
    result_line(
        "demo",
        {
            "seconds": round(seconds, 1),
            "accounts": summary.get("accounts", "?"),
            "plans": summary.get("plans", "?"),
            "messages": summary.get("messages", "?"),
            "responses": summary.get("responses", "?"),
            "outbox_emails": emails,
        },
    )
    return 0


def _outbox(directory: str) -> list[str]:
    outbox = os.path.join(directory, "outbox")
    return [f for f in os.listdir(outbox) if f.endswith(".eml")] if os.path.isdir(outbox) else []
