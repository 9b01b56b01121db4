"""What the plugin adds to pytest's start-up.

Runs ``pytest --co -q`` in an empty folder with the plugin off
(``-p no:effective_torch``) and on, alternating, and prints the medians.
Also times the run without ``-q``, where the session header is printed and
the plugin imports torch to report its version and thread count.

    python bench/bench_import.py [--runs 11]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def _time(args: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=11)
    runs = parser.parse_args().runs
    cases = {
        "plugin off (-q)": ["-q", "-p", "no:effective_torch"],
        "plugin on (-q)": ["-q"],
        "plugin off (header)": ["-p", "no:effective_torch"],
        "plugin on (header)": [],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory() as empty:
        for args in cases.values():  # warm the file cache
            _time(args, empty)
        for _ in range(runs):
            for name, args in cases.items():  # interleaved, so drift hits all alike
                times[name].append(_time(args, empty))
    med = {name: statistics.median(values) for name, values in times.items()}
    print(f"| case | median of {runs} (s) |")
    print("|---|---|")
    for name, value in med.items():
        print(f"| {name} | {value:.3f} |")
    print(f"| added by the plugin, -q | {med['plugin on (-q)'] - med['plugin off (-q)']:+.3f} |")
    print(f"| added by the plugin, with header | {med['plugin on (header)'] - med['plugin off (header)']:+.3f} |")


if __name__ == "__main__":
    main()
