"""Reading the store back: each bed's night so far, as plain JSON-able values.

``read_night`` returns, per bed, what was stored since ``since_wall`` (Unix seconds) across every
run of the engine: staged epochs, trend rows, each alarm's latest transition (with who
acknowledged it and when) and the acknowledgements. Rows without a wall time (replayed files)
are included when they belong to the newest run.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sleepstream.engine.errors import SinkError

BedNight = dict[str, Any]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    db.row_factory = sqlite3.Row
    return db


def read_night(path: str | Path, *, since_wall: float, current_run: int | None = None,
               beds: Sequence[str] = ()) -> dict[str, BedNight]:
    """Each bed's night so far; ``current_run``'s unfinished alarms are the live ones, those of
    earlier runs are marked ``previous_run`` (the engine restarted while they were active)."""
    path = Path(path)
    if not path.exists():
        return {b: _empty() for b in beds}
    try:
        db = _connect(path)
        try:
            return _read(db, since_wall, current_run, beds)
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise SinkError(f"cannot read the event store {path}: {exc}") from exc


def _empty() -> BedNight:
    return {"stages": [], "trends": [], "alarms": [], "acks": []}


def _read(db: sqlite3.Connection, since: float, current_run: int | None,
          beds: Sequence[str]) -> dict[str, BedNight]:
    newest = db.execute("SELECT MAX(run) FROM runs").fetchone()[0]
    where = "(wall >= :since OR (wall IS NULL AND run = :newest))"
    args = {"since": since, "newest": newest}
    out: dict[str, BedNight] = {b: _empty() for b in beds}
    for r in db.execute(f"SELECT bed, run, epoch_start, epoch_s, wall, stage, confidence "
                        f"FROM stages WHERE {where} ORDER BY run, epoch_start", args):
        out.setdefault(r["bed"], _empty())["stages"].append(dict(r))
    for r in db.execute(f"SELECT bed, run, start, t, wall, spo2, hr, rr, quality FROM trends "
                        f"WHERE {where} ORDER BY run, t", args):
        out.setdefault(r["bed"], _empty())["trends"].append(dict(r))
    acks: dict[tuple[int, str], dict[str, Any]] = {}
    for r in db.execute(f"SELECT bed, run, alert_id, by, t, wall, matched FROM acks "
                        f"WHERE {where} ORDER BY run, t", args):
        out.setdefault(r["bed"], _empty())["acks"].append(dict(r))
        if r["alert_id"] is not None and r["matched"]:
            acks[(r["run"], r["alert_id"])] = dict(r)
    latest = ("SELECT a.run, a.body, a.wall FROM alarms a JOIN (SELECT alert_id, run, "
              "MAX(rowid) AS last FROM alarms WHERE " + where +
              " GROUP BY alert_id, run) l ON a.rowid = l.last ORDER BY a.run, a.onset")
    for r in db.execute(latest, args):
        alarm = json.loads(r["body"])
        alarm["run"], alarm["wall"] = r["run"], r["wall"]
        alarm["previous_run"] = current_run is not None and r["run"] != current_run
        ack = acks.get((r["run"], alarm["id"]))
        if ack is not None:
            alarm["acked_by"], alarm["acked_wall"] = ack["by"], ack["wall"]
        out.setdefault(alarm["bed"], _empty())["alarms"].append(alarm)
    return out


def count_line(night: dict[str, BedNight]) -> str:
    """One line per bed for the console: what the night so far holds."""
    parts = []
    for bed, n in sorted(night.items()):
        parts.append(f"{bed}: {len(n['stages'])} epochs, {len(n['trends'])} trend rows, "
                     f"{len(n['alarms'])} alarms")
    return "; ".join(parts) or "nothing stored yet"
