"""Per-module mutation score from ``mutmut results --all true`` output (read from a file).

killed: a test failed (or timed out) on the mutant; not killed: it survived, or no selected
test reaches its function ("no tests"), or mutmut found it suspicious. Mutants not run
("not checked") are listed apart and left out of the score.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

KILLED = ("killed", "timeout", "segfault")
NOT_KILLED = ("survived", "no tests", "suspicious")


def read(path: str) -> dict[str, str]:
    """mutant name -> status."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            name, sep, status = line.strip().rpartition(": ")
            if sep and "__mutmut_" in name:
                out[name] = status
    return out


def module(name: str) -> str:
    return name[: name.index("__mutmut_")].rsplit(".", 1)[0]


def table(status: dict[str, str]) -> None:
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for name, st in status.items():
        by_module[module(name)][st] += 1
    total: Counter[str] = Counter()
    print(f"{'module':40} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} "
          f"{'not run':>7} {'score':>6}")
    for mod in sorted(by_module):
        total += by_module[mod]
        _row(mod, by_module[mod])
    _row("total", total)


def _row(name: str, c: Counter[str]) -> None:
    killed = sum(c[s] for s in KILLED)
    not_killed = sum(c[s] for s in NOT_KILLED)
    done = killed + not_killed
    score = f"{100 * killed / done:.1f}" if done else "-"
    print(f"{name.removeprefix('sleepstream.'):40} {sum(c.values()):7d} {killed:6d} "
          f"{c['survived'] + c['suspicious']:8d} {c['no tests']:8d} {c['not checked']:7d} "
          f"{score:>6}")


if __name__ == "__main__":
    merged: dict[str, str] = {}
    for path in sys.argv[1:]:  # later runs override earlier ones for the mutants they ran
        for name, st in read(path).items():
            if st != "not checked" or name not in merged:
                merged[name] = st
    table(merged)
