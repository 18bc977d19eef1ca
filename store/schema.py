"""The store's schema, version 1. One SQLite file; every run of the engine appends to it.

Times: ``t`` columns are seconds on the engine clock of their run (0 when that run started);
``wall`` columns are Unix seconds (UTC), ``t`` mapped through the run's wall-clock origin, so rows
of different runs line up (NULL where the run had no wall clock: a replayed file).

Tables
- ``meta(key, value)``: ``schema_version`` (this module's ``SCHEMA_VERSION``).
- ``runs(run, started_wall, config)``: one row per engine start.
- ``stages(run, bed, epoch_start, epoch_s, wall, stage, confidence, probs, modalities, missing,
  revision)``: one row per staged epoch (``stage`` NULL: the decoder abstained); ``probs`` JSON.
- ``alarms(run, bed, alert_id, code, kind, priority, state, onset, end, t, wall, value, message,
  channels, body)``: one row per alarm transition (active, escalated, acknowledged, ended),
  technical alarms included; ``body`` is the whole event as JSON.
- ``acks(run, bed, alert_id, by, t, wall, matched)``: one row per acknowledgement received (from
  MQTT, the CLI or the web view); ``alert_id`` NULL meant every announced alarm of the bed.
- ``trends(run, bed, start, t, wall, spo2, hr, rr, quality, channels)``: one row per trend period
  (SpO2 %, heart rate bpm, respiratory rate breaths/min, fraction of valid samples).
- ``events(run, bed, type, t, wall, body)``: everything else (scored events, running indices,
  apnea minutes, status), the event as JSON.

A file written by a newer schema is refused (``SinkError``); an older one is migrated in place
by ``ensure_schema``.
"""

from __future__ import annotations

import sqlite3

from sleepstream.engine.errors import SinkError

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY AUTOINCREMENT, started_wall REAL, config TEXT);
CREATE TABLE IF NOT EXISTS stages (
    run INTEGER NOT NULL, bed TEXT NOT NULL, epoch_start REAL NOT NULL, epoch_s REAL NOT NULL,
    wall REAL, stage TEXT, confidence REAL, probs TEXT, modalities TEXT, missing TEXT,
    revision INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS stages_bed_wall ON stages (bed, wall);
CREATE TABLE IF NOT EXISTS alarms (
    run INTEGER NOT NULL, bed TEXT NOT NULL, alert_id TEXT NOT NULL, code TEXT NOT NULL,
    kind TEXT, priority TEXT, state TEXT NOT NULL, onset REAL, "end" REAL, t REAL, wall REAL,
    value REAL, message TEXT, channels TEXT, body TEXT);
CREATE INDEX IF NOT EXISTS alarms_bed_wall ON alarms (bed, wall);
CREATE INDEX IF NOT EXISTS alarms_id ON alarms (alert_id);
CREATE TABLE IF NOT EXISTS acks (
    run INTEGER NOT NULL, bed TEXT NOT NULL, alert_id TEXT, by TEXT, t REAL, wall REAL,
    matched INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trends (
    run INTEGER NOT NULL, bed TEXT NOT NULL, start REAL NOT NULL, t REAL NOT NULL, wall REAL,
    spo2 REAL, hr REAL, rr REAL, quality REAL, channels TEXT);
CREATE INDEX IF NOT EXISTS trends_bed_wall ON trends (bed, wall);
CREATE TABLE IF NOT EXISTS events (
    run INTEGER NOT NULL, bed TEXT, type TEXT NOT NULL, t REAL, wall REAL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_bed_wall ON events (bed, wall);
"""

# version -> statements taking a file from version - 1 to version (none yet: version 1 is first)
MIGRATIONS: dict[int, str] = {}


def ensure_schema(db: sqlite3.Connection) -> int:
    """Create or migrate the schema of ``db``; return the version found before (0: new file)."""
    db.executescript(DDL)
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    found = int(row[0]) if row else 0
    if found > SCHEMA_VERSION:
        raise SinkError(f"the store was written by schema version {found}; this sleepstream "
                          f"knows up to {SCHEMA_VERSION}: upgrade sleepstream or use a new file")
    for version in range(max(found, 1) + 1, SCHEMA_VERSION + 1):
        db.executescript(MIGRATIONS[version])
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
               (str(SCHEMA_VERSION),))
    db.commit()
    return found
