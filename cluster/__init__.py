"""Running the engine past one machine: beds sharded over Ray actors by a consistent hash.

``hashring`` (which shard owns a bed), ``shard`` (a shard worker: the single-process bed pipeline
for its beds), ``coordinator`` (placement, heartbeats, failover). Nothing in the runtime imports
this package; the composition root (``engine.app``) does, only when a cluster is asked for.
"""
