"""``sleepstream bench cluster``: sharding over a local multi-node Ray cluster, measured.

Starts ``ray.cluster_utils.Cluster`` (``--nodes`` nodes, one CPU each) and a private Mosquitto,
then in the same run:

- throughput: the same EDF beds (oximetry recordings, replayed as fast as possible, no model) by
  one process and by one shard per node; CPU seconds of the engine work (``time.process_time``
  deltas in each process) give beds per core (bed-seconds of data per CPU second: how many live
  beds one core carries) and the overhead ratio (shard CPU / single-process CPU);
- failover: wearable simulators feed beds over MQTT; one extra node is removed mid-run; for each
  moved bed, the time from the removal to its first data processed on the new shard
  (``resume_s``) and the samples published while no shard had it (``lost``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

from sleepstream.engine.report import print_figures

DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "oximetry-hugcdn"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, default=2, help="nodes (shards) for the throughput run")
    p.add_argument("--data", type=Path, default=DATA, help="folder of oximetry EDF files")
    p.add_argument("--files", type=int, default=4, help="recordings per copy")
    p.add_argument("--copies", type=int, default=2, help="beds per recording")
    p.add_argument("--beds", type=int, default=6, help="wearable beds in the failover run")
    p.add_argument("--speed", type=float, default=4.0, help="wearable replay speed")
    p.add_argument("--json", action="store_true", help="end with one JSON line")


async def _bench(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    from sleepstream.cluster import scenario
    from sleepstream.simulators.broker import local_mosquitto

    files = sorted(args.data.glob("*.edf"))[: args.files]
    if not files:
        raise SystemExit(f"bench cluster: no EDF files in {args.data}")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(args.nodes - 1):
        cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    try:
        tp = await scenario.throughput(folder / "tp", files, args.copies)
        with local_mosquitto() as port:
            fo = await scenario.failover(cluster, port, folder / "fo", n_beds=args.beds,
                                         duration_s=40.0, speed=args.speed)
    finally:
        ray.shutdown()
        cluster.shutdown()
    resume = list(fo.resume_s.values())
    lost = list(fo.lost.values())
    return {
        "beds": tp.beds, "shards": tp.shards, "data_bed_s": round(tp.data_s, 1),
        "single_cpu_s": round(tp.single_cpu_s, 3), "shard_cpu_s": round(tp.shard_cpu_s, 3),
        "single_wall_s": round(tp.single_wall_s, 3), "shard_wall_s": round(tp.shard_wall_s, 3),
        "beds_per_core_single": round(tp.data_s / tp.single_cpu_s, 1),
        "beds_per_core_sharded": round(tp.data_s / tp.shard_cpu_s, 1),
        "overhead_ratio": round(tp.shard_cpu_s / tp.single_cpu_s, 3),
        "events_per_bed_hour": round(tp.events / (tp.data_s / 3600.0), 1),
        "failover_beds": len(fo.beds), "moved_beds": len(fo.moved),
        "detect_s": round(fo.detect_s, 3),
        "resume_s_max": round(max(resume), 3) if resume else None,
        "resume_s_median": round(statistics.median(resume), 3) if resume else None,
        "resume_s_goal": "<= dead_after_s + 1 s resubscribe (3 s)",
        "samples_lost_per_moved_bed": round(statistics.mean(lost), 1) if lost else None,
        "samples_lost_max": max(lost) if lost else None,
        "wearable_samples_per_s": 77.0,  # SpO2 + HR at 1 Hz, 3 axes at 25 Hz
        "speed": args.speed,
    }


def main(args: argparse.Namespace) -> int:
    try:
        import ray  # noqa: F401
    except ImportError:
        print("bench cluster: ray is not installed; pip install 'sleepstream[cluster]'")
        return 2
    with tempfile.TemporaryDirectory(prefix="sleepstream-cluster-") as tmp:
        figures = asyncio.run(_bench(args, Path(tmp)))
    if not args.json:
        for k, v in figures.items():
            print(f"{k:<28} {v}")
    print_figures(figures, as_json=args.json)
    return 0
