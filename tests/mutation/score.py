"""Per-module mutation score from ``mutmut results --all true`` output (read from a file)."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict


def main(path: str) -> None:
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for line in lines:
        name, sep, status = line.strip().rpartition(": ")
        if not sep or "__mutmut_" not in name:
            continue
        module = name[: name.index("__mutmut_")].rsplit(".", 1)[0]
        by_module[module][status] += 1
    total: Counter[str] = Counter()
    print(f"{'module':45} {'killed':>6} {'survived':>8} {'other':>6} {'score':>6}")
    for module in sorted(by_module):
        c = by_module[module]
        total += c
        _row(module, c)
    _row("total", total)


def _row(name: str, c: Counter[str]) -> None:
    killed = c["killed"] + c["timeout"]
    survived = c["survived"]
    other = sum(c.values()) - killed - survived
    done = killed + survived
    score = f"{100 * killed / done:.1f}" if done else "-"
    print(f"{name:45} {killed:6d} {survived:8d} {other:6d} {score:>6}")


if __name__ == "__main__":
    main(sys.argv[1])
