"""The web view end to end in real headless Chromium (Debian's ``chromium``, driven by
Playwright) against a live engine fed by the MQTT device simulator: the bed tile appears, a stage
and an alarm show up live, acknowledging on the page changes the alarm in the engine and in the
store, and a screenshot is kept (``SLEEPSTREAM_ARTIFACTS``, else the test's tmp folder)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed")
playwright_api = pytest.importorskip("playwright.async_api",
                                     reason="playwright is not installed (dev extra)")

from tests.web.station import BED, TOKEN, station, wait_until  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OPERATOR = "nurse-e2e"


def _artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SLEEPSTREAM_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _alarm(events, state: str):
    return next((e for e in events if e.get("type") == "alert" and e.get("state") == state
                 and e.get("kind") == "physiological"), None)


async def _scenario(tmp_path: Path, broker) -> Path:
    shot = _artifacts(tmp_path) / "web-station.png"
    async with station(tmp_path, broker) as st, playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 620})
            await page.goto(f"{st.url}/?token={TOKEN}")  # sets the cookie, then the page
            tile = page.locator(f'.tile[data-bed="{BED}"]')
            await tile.wait_for(timeout=10_000)
            # the page re-renders tiles and rows from each update: locators, never element
            # handles (a handle to a replaced element never changes again)
            expect = playwright_api.expect
            stage = tile.locator('[data-role="stage"]')
            await expect(stage).to_have_text(re.compile(r"^\s*(W|N1|N2|N3|REM|—)\s*$"),
                                             timeout=20_000)
            first = next(e for e in st.events.events if e.get("type") == "stage")
            assert await stage.text_content() in (first["stage"] or "—", "W", "N1", "N2", "N3",
                                                  "REM", "—")
            chip = tile.locator('[data-role="alarms"] .chip').first
            await chip.wait_for(timeout=20_000)  # hypoxemia, live
            active = await wait_until(lambda: _alarm(st.events.events, "active"), 5)
            assert await tile.locator(f'[data-alarm-id="{active["id"]}"]').count() == 1
            # the simulator replays at SPEED x real time: its data is stamped ahead of the
            # clock, and the tile says so instead of "0 s ago"
            await expect(tile.locator('[data-role="last-data"]')).to_contain_text(
                re.compile(r"\d+ s ahead of the clock"), timeout=10_000)
            # the engine's running indices reach the tile (null, "--", before 10 min of signal)
            await expect(tile.locator('[data-role="indices"]')).to_have_text(
                re.compile(r"^ODI3 (--|\d+\.\d)/h · AHI (--|\d+\.\d)/h · apnea minutes "
                           r"(--|\d+\.\d)/h$"), timeout=10_000)
            await page.screenshot(path=str(shot))

            await page.fill("#operator", OPERATOR)
            await page.click('nav a[href="/alarms"]')
            button = page.locator(f'button[data-ack="{active["id"]}"]')
            await button.click(timeout=10_000)
            row = page.locator(f'#alarms tr[data-alarm-id="{active["id"]}"]')
            await expect(row).to_have_attribute("data-state", re.compile("acknowledged|ended"),
                                                timeout=20_000)
            await expect(row.locator("[data-role=acked]")).to_contain_text(OPERATOR,
                                                                          timeout=20_000)
        finally:
            await browser.close()
        # in the engine: the alarm's transition and the receipt naming who acknowledged it
        acked = await wait_until(lambda: next(
            (e for e in st.events.events if e.get("type") == "alert"
             and e.get("id") == active["id"] and "acknowledged_at" in e), None), 5)
        assert acked["state"] in ("acknowledged", "ended")
        receipt = next(e for e in st.events.events if e.get("command") == "ack")
        assert receipt["by"] == OPERATOR and receipt["matched"] is True
        # in the store: the acknowledgement with who and when, and the alarm's new state
        store = st.parts.store
        assert store is not None
        await wait_until(lambda: _stored_ack(store.path, active["id"]), 5)
    states = [r[0] for r in _query(store.path, "SELECT state FROM alarms WHERE alert_id = ?",
                                   active["id"])]
    assert "active" in states and acked["state"] in states
    return shot


def _query(path: Path, sql: str, *args):
    with sqlite3.connect(path) as db:
        return db.execute(sql, args).fetchall()


def _stored_ack(path: Path, alert_id: str):
    rows = _query(path, "SELECT by, t, wall, matched FROM acks WHERE alert_id = ?", alert_id)
    return rows and rows[0][0] == OPERATOR and rows[0][2] is not None and rows[0][3] == 1


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                    "(apt-get install chromium)")
def test_station_in_chromium_shows_stage_and_alarm_live_and_acknowledges(tmp_path, mosquitto):
    shot = asyncio.run(_scenario(tmp_path, mosquitto))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
