"""Moved to `clapsweep.bench.cli`; this re-export keeps `from clapsweep import bench_cli`
(and `python -m clapsweep.bench_cli`) working."""

import sys

from clapsweep.bench.cli import add_commands, main

__all__ = ["add_commands", "main"]

if __name__ == "__main__":
    sys.exit(main())
