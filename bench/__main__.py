"""`python -m bench` lists the benchmarks; `python -m bench <name> [options]` runs one."""

from __future__ import annotations

import argparse
import importlib
import sys

from bench import BENCHMARKS


def list_benchmarks() -> str:
    width = max(len(name) for name in BENCHMARKS)
    lines = ["usage: python -m bench <name> [options]   (python -m bench <name> --help)", "", "benchmarks:"]
    lines += [f"  {b.name.ljust(width)}  {b.description}" for b in BENCHMARKS.values()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "list"):
        print(list_benchmarks())
        return 0
    name, rest = argv[0], argv[1:]
    found = BENCHMARKS.get(name)
    if found is None:
        print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        print(list_benchmarks(), file=sys.stderr)
        return 2
    module = importlib.import_module(found.module)
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}", description=found.description)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
