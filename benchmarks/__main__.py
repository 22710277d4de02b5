"""``make bench``: run every ``benchmarks/bench_*.py`` (each exposes ``main()``) and print its ratios.

``python -m benchmarks ring modbus`` runs only the named ones.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback

import benchmarks


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if n.removeprefix("bench_") in argv or n in argv]
    failed = []
    for name in names:
        print(f"\n=== {name.removeprefix('bench_')} ===", flush=True)
        t0 = time.perf_counter()
        try:
            importlib.import_module(f"benchmarks.{name}").main()
        except Exception:  # noqa: BLE001 - one failing benchmark is reported and the others still run
            traceback.print_exc()
            failed.append(name)
        print(f"({time.perf_counter() - t0:.1f} s)", flush=True)
    if failed:
        print(f"\nbenchmarks that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
