"""``/metrics``, ``/healthz``, ``/readyz`` and the bearer token, scraped during a live run."""

from __future__ import annotations

import asyncio
import re

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed")

from tests.web.station import BED, TOKEN, get, post, station, wait_until


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` of a Prometheus text page (labels given must match)."""
    for line in text.splitlines():
        m = re.match(rf"{name}(?:{{(.*)}})? (\S+)$", line)
        if m and all(f'{k}="{v}"' in (m.group(1) or "") for k, v in labels.items()):
            return float(m.group(2))
    raise AssertionError(f"{name} {labels} not in the scrape")


async def _scenario(tmp_path, broker):
    async with station(tmp_path, broker) as st:
        status, _ = await asyncio.to_thread(get, st.url + "/metrics", None)
        assert status == 401
        status, _ = await asyncio.to_thread(get, st.url + "/api/snapshot", "wrong")
        assert status == 401
        status, _ = await asyncio.to_thread(get, st.url + "/api/events", None)
        assert status == 401  # the event stream too
        status, _ = await asyncio.to_thread(post, st.url + f"/api/beds/{BED}/ack", b"{}", None)
        assert status == 401  # and acknowledgements
        status, _ = await asyncio.to_thread(post, st.url + f"/api/beds/{BED}/ack", b"{", TOKEN)
        assert status == 400
        await wait_until(lambda: st.beds[0].frames_in >= 60, 20)
        await wait_until(lambda: any(e.get("type") == "stage" for e in st.events.events), 20)
        await wait_until(lambda: st.parts.store.stats.batches > 0, 5)
        status, text = await asyncio.to_thread(get, st.url + "/metrics")
        assert status == 200
        assert value(text, "sleepstream_frames_total", bed=BED) >= 60
        assert value(text, "sleepstream_samples_total", bed=BED) >= 60
        assert value(text, "sleepstream_dropped_total", queue="frames", reason="full") == 0
        value(text, "sleepstream_queue_depth", queue="events")
        value(text, "sleepstream_queue_depth", queue="store")
        assert value(text, "sleepstream_beds_connected") == 1
        value(text, "sleepstream_source_reconnects_total", bed=BED)
        assert value(text, "sleepstream_stages_total", bed=BED) >= 1
        assert value(text, "sleepstream_backend_step_seconds_count") > 0
        assert value(text, "sleepstream_store_write_seconds_count") > 0
        assert value(text, "sleepstream_store_rows_total") > 0
        status, text = await asyncio.to_thread(get, st.url + "/healthz")
        assert status == 200 and text.startswith("ok")
        status, text = await asyncio.to_thread(get, st.url + "/readyz")
        assert status == 200, text


def test_metrics_and_health_are_scraped_during_a_run(tmp_path, mosquitto):
    asyncio.run(_scenario(tmp_path, mosquitto))
