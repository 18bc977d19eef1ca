"""Beds sharded over a real multi-node Ray cluster on this machine (``ray.cluster_utils``):
the same events as one process, only a lost node's beds move, each with one
``monitoring_interrupted`` alarm, and every shard subscribes to its own beds' topics only."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sqlite3
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install '.[cluster]')")

from ray.cluster_utils import Cluster  # noqa: E402

from sleepstream.cluster import coordinator as co  # noqa: E402
from sleepstream.cluster import runner, scenario  # noqa: E402
from sleepstream.cluster.shard import shard_config  # noqa: E402
from sleepstream.drivers.mqtt_common import BrokerSettings  # noqa: E402
from sleepstream.engine.app.compose import build_engine  # noqa: E402
from sleepstream.simulators.faults import Fault, FaultSchedule  # noqa: E402
from sleepstream.simulators.wearable import run_wearable  # noqa: E402
from tests.peers import Mosquitto  # noqa: E402

OXIMETRY = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "oximetry-hugcdn"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head and one worker node, one CPU each; reused by every test here."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    ray.init(address=c.address, log_to_driver=False)
    c.wait_for_nodes()
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


def _key(e: dict) -> str:
    return json.dumps(e, sort_keys=True)


async def test_sharded_replay_gives_the_same_events_as_one_process(
        cluster: Cluster, tmp_path: Path) -> None:
    files = sorted(OXIMETRY.glob("*.edf"), key=lambda f: f.stat().st_size)[:3]  # shortest
    if not files:
        pytest.skip("the shared oximetry recordings (../shared/data/oximetry-hugcdn) are absent")
    config = scenario.edf_config(tmp_path / "one", files, copies=2)
    await scenario.single_process(config)
    alone = scenario.read_events(tmp_path / "one")
    cpu, _, shards = await asyncio.to_thread(
        scenario.sharded, scenario.edf_config(tmp_path / "many", files, copies=2))
    many = scenario.read_events(tmp_path / "many")
    assert shards == len(co.alive_nodes()) >= 2 and cpu > 0
    ring = co.HashRing(tuple(co.shard_name(n) for n in co.alive_nodes()))
    used = {s for s, beds in ring.by_shard(b.id for b in config.beds).items() if beds}
    assert len(list((tmp_path / "many").glob("events.*.jsonl"))) == len(used)  # a file a shard
    assert any(e["type"] == "alert" for e in alone)
    assert Counter(map(_key, many)) == Counter(map(_key, alone))


async def test_a_lost_node_moves_only_its_beds_with_one_interruption_alarm(
        cluster: Cluster, mosquitto: Mosquitto, tmp_path: Path) -> None:
    r = await scenario.failover(cluster, mosquitto.port, tmp_path, n_beds=6, duration_s=100.0,
                                speed=4.0, kill_after_s=3.0, checkpoint="default")
    ring = co.HashRing((*(co.shard_name(n) for n in co.alive_nodes()), r.victim))
    owned = {b for b, s in ring.assign(r.beds).items() if s == r.victim}
    assert owned and set(r.moved) == owned  # exactly the lost shard's beds moved
    assert r.victim not in r.moved.values()
    alarms = [e for e in r.events if e.get("code") == "monitoring_interrupted"]
    for bed in r.beds:
        mine = [e for e in alarms if e["bed"] == bed]
        if bed not in owned:
            assert not mine, bed  # nothing else is affected
            continue
        assert [e["state"] for e in mine] == ["active", "ended"], mine
        assert mine[1]["onset"] < mine[1]["end"] and mine[0]["kind"] == "technical"
        assert 0 < r.resume_s[bed] < 10.0  # bounded: detection (<= dead_after_s) + resubscribe
        rate = 77 * 4.0  # samples per wall second: 2 x 1 Hz + 3 x 25 Hz channels at speed 4
        assert 0 <= r.lost[bed] <= (r.resume_s[bed] + 1.0) * rate  # only the gap was lost
        assert r.lost[bed] < r.sent[bed] / 2  # the bed kept going after the move
        moved_to = sorted(tmp_path.glob(f"events.{r.moved[bed]}.g[1-9]*.jsonl"))
        staged = [e for f in moved_to for e in map(json.loads, f.read_text().splitlines())
                  if e["type"] == "stage" and e["bed"] == bed]
        assert staged, bed  # staging resumed on the new shard


def test_each_shard_config_holds_only_its_beds_topics(tmp_path: Path) -> None:
    beds = [f"b-{i}" for i in range(12)]
    config = scenario.wearable_config(tmp_path, 1883, beds, "site-x")
    placed = co.HashRing(("s1", "s2", "s3")).by_shard(beds)
    seen: list[str] = []
    for shard, mine in placed.items():
        _, runtimes, _ = build_engine(shard_config(config, mine, shard), live=True)
        topics = {t for r in runtimes for d in r.drivers for t in _topics(d)}
        assert topics == {f"sleepstream/v1/site-x/{b}/data/+" for b in mine}
        seen += mine
    assert sorted(seen) == sorted(beds)


def _topics(driver: object) -> list[str]:
    prefix = getattr(driver, "_prefix", None)  # the MQTT source subscribes to prefix + "+"
    assert isinstance(prefix, str), f"no subscription prefix on {type(driver).__name__}"
    return [prefix + "+"]


async def test_one_store_and_web_view_for_every_shard(
        cluster: Cluster, mosquitto: Mosquitto, tmp_path: Path) -> None:
    """``run --cluster`` with ``--store`` and ``--http``: the coordinator's store holds every
    shard's alarms and trends (the same alarm transitions as the shards' own JSONL sinks), its
    web view shows every bed live, and an acknowledgement from the page reaches the shard that
    owns the bed and comes back as a stored receipt."""
    site = f"site-{uuid.uuid4().hex[:8]}"
    shards = [co.shard_name(n) for n in co.alive_nodes()]
    beds = scenario.pick_beds(shards, 4, prefix=site)
    config = scenario.wearable_config(tmp_path, mosquitto.port, beds, site)
    db = tmp_path / "night.sqlite"
    config = replace(config, http=replace(config.http, listen="127.0.0.1:0"),
                     store=replace(config.store, path=str(db), batch_s=0.2, trend_s=3.0))
    out = io.StringIO()
    run = asyncio.create_task(runner.serve(config, 16.0, out, signals=False))
    url = await _wait_for(lambda: re.search(r"web view on (\S+)/", out.getvalue()), 30.0)
    base = url.group(1)
    broker = BrokerSettings(host="127.0.0.1", port=mosquitto.port)
    await asyncio.sleep(1.0)  # the shards' sources subscribe
    probe_off = FaultSchedule((Fault("sensor_off", 4.0, 16.0, ("SpO2",)),))  # an alarm a bed
    sims = [asyncio.create_task(run_wearable(broker=broker, site=site, bed=b, duration_s=24.0,
                                             speed=4.0, seed=i, faults=probe_off))
            for i, b in enumerate(beds)]
    snapshot = await _wait_for(lambda: _all_live(base, beds), 20.0)
    assert {b["bed"] for b in snapshot["beds"]} == set(beds)
    ring = co.HashRing(tuple(shards))
    far = next(b for b, s in ring.assign(beds).items() if s != shards[0])
    status, _ = await asyncio.to_thread(
        _post, f"{base}/api/beds/{far}/ack", json.dumps({"id": None, "by": "nurse-7"}).encode())
    assert status == 202
    await asyncio.gather(*sims)
    assert await run == 0
    with sqlite3.connect(db) as con:
        acks = con.execute("SELECT bed, by FROM acks").fetchall()
        stored = Counter(con.execute(
            "SELECT alert_id, state FROM alarms WHERE bed != ''").fetchall())
        trend_beds = {r[0] for r in con.execute("SELECT DISTINCT bed FROM trends")}
    assert acks == [(far, "nurse-7")]
    assert trend_beds == set(beds)
    sent = Counter((e["id"], e["state"]) for e in scenario.read_events(tmp_path)
                   if e["type"] == "alert")
    assert {e.split("/")[0] for e, _ in sent} == set(beds)  # every bed alarmed, on both shards
    assert stored == sent


async def _wait_for(probe, timeout_s: float):
    async with asyncio.timeout(timeout_s):
        while not (found := await asyncio.to_thread(probe)):
            await asyncio.sleep(0.2)
    return found


def _all_live(base: str, beds: list[str]) -> dict | None:
    with urllib.request.urlopen(f"{base}/api/snapshot", timeout=5) as res:
        snap = json.loads(res.read())
    live = {b["bed"]: b["live"] for b in snap["beds"]}
    return snap if all(live.get(b, {}).get("last_data_t") is not None for b in beds) else None


def _post(url: str, body: bytes) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_pooled_inference_matches_the_local_backend(cluster: Cluster) -> None:
    """Two shards' beds stepped through one pooled service (concurrently, so their requests
    are joined into shared backend calls; KV kept on the service) give the local backend's
    outputs, resets included; a forgotten shard's slots return to the pool."""
    from concurrent.futures import ThreadPoolExecutor

    from sleepstream.cluster.serving import PooledBackend, start_service
    from sleepstream.engine.inference.backends import make_backend
    from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR, load_model_files
    from sleepstream.engine.protocols import StepBatch

    files = load_model_files(DEFAULT_MODEL_DIR)
    m, q, cap = len(files.modalities), files.levels, 3
    service = start_service(str(DEFAULT_MODEL_DIR), 16, max_wait_s=0.05)
    pooled = [PooledBackend(service, f"shard-{k}", files, cap) for k in range(2)]
    local = [make_backend("onnx", files, cap) for _ in range(2)]
    rng = np.random.default_rng(7)
    worst = 0.0
    with ThreadPoolExecutor(2) as pool:
        for t in range(70):  # past the KV window: the ring wraps
            batches = [StepBatch(rng.integers(0, 16, (cap, m, q)), rng.random((cap, m)) > 0.3,
                                 np.arange(cap, dtype=np.int64)) for _ in range(2)]
            if t == 33:
                for be in (*pooled, *local):
                    be.reset(np.array([1], np.int64))
            remote = list(pool.map(PooledBackend.step, pooled, batches))
            for out, be, b in zip(remote, local, batches, strict=True):
                ref = be.step(b)
                for a in ("embeddings", "stage_logits", "surprise"):
                    worst = max(worst, float(np.abs(getattr(out, a) - getattr(ref, a)).max()))
    stats = ray.get(service.stats.remote())
    assert worst < 1e-5, worst
    assert stats["requests"] == 140 and stats["calls"] < stats["requests"]  # joined calls
    assert stats["slots_used"] == 2 * cap  # every bed's KV on the service
    assert ray.get(service.forget.remote("shard-0")) == cap
    assert ray.get(service.stats.remote())["slots_used"] == cap
    ray.kill(service)


async def test_a_pooled_run_steps_every_bed_on_the_shared_service(
        cluster: Cluster, mosquitto: Mosquitto, tmp_path: Path) -> None:
    """``[cluster] inference = "pooled"`` with the shipped model: both shards stage through one
    service that holds a KV slot per bed; every bed gets its stage events."""
    site = f"site-{uuid.uuid4().hex[:8]}"
    shards = [co.shard_name(n) for n in co.alive_nodes()]
    beds = scenario.pick_beds(shards, 3, prefix=site)
    config = scenario.wearable_config(tmp_path, mosquitto.port, beds, site)
    config = replace(config, model=replace(config.model, checkpoint="default"),
                     cluster=replace(config.cluster, inference="pooled"))
    out = io.StringIO()
    run = asyncio.create_task(runner.serve(config, 40.0, out, signals=False))
    await _wait_for(lambda: "shard(s):" in out.getvalue(), 60.0)
    await asyncio.sleep(1.5)  # the shards' sources subscribe
    broker = BrokerSettings(host="127.0.0.1", port=mosquitto.port)
    await asyncio.gather(*(run_wearable(broker=broker, site=site, bed=b, duration_s=120.0,
                                        speed=4.0, seed=i) for i, b in enumerate(beds)))
    assert await run == 0
    found = re.search(r"pooled inference: (\d+) step requests in (\d+) backend calls, (\d+) of",
                      out.getvalue())
    assert found, out.getvalue()
    requests, calls, slots = map(int, found.groups())
    assert requests > 0 and 0 < calls <= requests and slots == len(beds)
    staged = Counter(e["bed"] for e in scenario.read_events(tmp_path) if e["type"] == "stage")
    assert set(staged) == set(beds), staged
