"""`make bench`: run every tests/bench/bench_*.py module's `main()` in turn.

Each benchmark measures its subject next to a baseline in the same process and
prints ratios; nothing here asserts a time. `python -m tests.bench NAME ...`
runs only the named benchmarks (e.g. `proxy`, `server`).
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if n.removeprefix("bench_") in argv or n in argv]
    failed = 0
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        try:
            importlib.import_module(f"tests.bench.{name}").main()
        except Exception:  # one broken benchmark must not hide the others
            traceback.print_exc()
            failed += 1
        print(f"--- {name}: {time.perf_counter() - started:.1f}s wall", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
