"""The central-station web view of a running engine: Starlette routes, a live event stream,
Prometheus metrics and health endpoints (needs the ``web`` extra)."""
