"""The SQLite event store: rows of a real replay survive a restart and read back as the night so
far (the web view starts from them); a locked file raises one technical alarm per bed while the
events keep coming, and the alarm ends once the file is writable again."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from sleepstream.engine.app.compose import build_engine, replay_config
from sleepstream.engine.clock import MonotonicClock
from sleepstream.engine.config import Config, StoreSection
from sleepstream.store.history import read_night
from sleepstream.store.schema import SCHEMA_VERSION
from sleepstream.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
NIGHT = ROOT / "simulators" / "recordings" / "hugcdn-D2.edf"


async def _replay_into(store: SqliteStore, seconds: float) -> None:
    """Replay the first ``seconds`` of the shipped night through the engine into ``store``."""
    from dataclasses import replace

    from sleepstream.drivers.edf import EdfSource

    config = replay_config(NIGHT, bed="bed-r", base=Config())
    config = replace(config, model=replace(config.model, checkpoint="none"),
                     store=StoreSection(path=str(store.path), trend_s=60.0))  # trends on
    source = _Head(EdfSource(NIGHT, speed=None, chunk_s=60.0), seconds)
    engine, _, _ = build_engine(config, live=False, extra_sinks=[store],
                                drivers={"bed-r": [source]})
    await engine.run()


class _Head:
    """The first ``seconds`` of a driver's frames."""

    def __init__(self, inner, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    @property
    def channels(self):
        return self.inner.channels

    async def __aenter__(self):
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc):
        await self.inner.__aexit__(*exc)

    async def frames(self):
        async for item in self.inner.frames():
            if getattr(item, "timestamps", None) is not None and item.timestamps[0] >= self.seconds:
                return
            yield item


def test_a_replayed_hour_survives_a_restart_as_the_night_so_far(tmp_path):
    path = tmp_path / "night.sqlite"
    first = SqliteStore(path, beds=["bed-r"], clock=MonotonicClock(), wall_origin=time.time(),
                        batch_s=0.05)
    assert first.open() == 1
    asyncio.run(_replay_into(first, 3600.0))
    assert first.stats.failures == 0 and first.stats.rows > 0
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        trends = db.execute("SELECT COUNT(*), AVG(spo2), AVG(hr) FROM trends").fetchone()
        alarms = db.execute("SELECT COUNT(*) FROM alarms").fetchone()[0]
    assert int(version) == SCHEMA_VERSION
    assert trends[0] == 60 and 80 < trends[1] < 100 and 40 < trends[2] < 120  # a minute each

    second = SqliteStore(path, beds=["bed-r"], clock=MonotonicClock(), wall_origin=time.time())
    run = second.open()
    assert run == 2 and second.previous_version == SCHEMA_VERSION
    night = read_night(path, since_wall=time.time() - 16 * 3600, current_run=run,
                       beds=["bed-r"])["bed-r"]
    assert len(night["trends"]) == 60
    assert len(night["alarms"]) == len({(a["run"], a["id"]) for a in night["alarms"]}) > 0
    assert all(a["previous_run"] for a in night["alarms"])  # from before the restart
    assert alarms >= len(night["alarms"])

    from sleepstream.web.view import ViewState

    view = ViewState([("bed-r", "ward")], wall_origin=time.time(), run=run)
    view.load_history({"bed-r": night})
    tile = view.bed_view("bed-r")
    assert len(tile["trends"]) == 60 and tile["active"] == []  # old alarms are not live ones


async def _locked(path: Path) -> tuple[SqliteStore, list[dict]]:
    published: list[dict] = []
    store = SqliteStore(path, beds=["a", "b"], clock=MonotonicClock(), wall_origin=time.time(),
                        batch_s=0.05, retry_s=0.1, busy_timeout_s=0.05)
    store.open()
    store.publish = published.append
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another program holds the file
    for i in range(50):
        await store.emit({"type": "index", "bed": "a", "t": float(i)})
        await asyncio.sleep(0.01)
    await _until(lambda: len(published) == 2)
    assert store.stats.failing and store.stats.rows == 0
    assert store.stats.failures >= 1 and store.pending + 50 >= 50
    lock.execute("ROLLBACK")
    lock.close()
    await _until(lambda: len(published) == 4)
    await store.aclose()
    return store, published


async def _until(predicate, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)


def test_a_locked_store_raises_a_technical_alarm_and_nothing_is_lost(tmp_path):
    path = tmp_path / "night.sqlite"
    store, published = asyncio.run(_locked(path))
    onsets, ends = published[:2], published[2:]
    assert {e["bed"] for e in onsets} == {"a", "b"}
    assert all(e["code"] == "store_failed" and e["kind"] == "technical"
               and e["state"] == "active" for e in onsets)
    assert [e["state"] for e in ends] == ["ended", "ended"]
    assert [e["id"] for e in ends] == [e["id"] for e in onsets]
    assert not store.stats.failing and store.stats.dropped == 0
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 50  # retried, kept
