"""``sleepstream report``: HTML (self-contained) and PDF (one page) from a replay's events and
its recording, checked for their content (an EDF input goes through ``sleepstream.analyze``,
tested in test_analyze.py)."""

from __future__ import annotations

import base64
import re

import pytest

from sleepstream.engine.app.cli import main as cli
from sleepstream.report.night import Night


def test_html_report_from_events_is_self_contained(short_night, short_replay, tmp_path):
    events_path, _, events = short_replay
    out = tmp_path / "night.html"
    assert cli(["report", str(events_path), "--recording", str(short_night), "--out",
                str(out)]) == 0
    text = out.read_text()
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", text)  # nothing outside
    png = re.search(r'src="data:image/png;base64,([^"]+)"', text)
    assert png and base64.b64decode(png.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    night = Night.from_jsonl(events_path)
    stats = night.statistics()
    assert f"<th>TIB</th><td class=num>{stats['TIB']:.0f}</td>" in text
    assert "sleep efficiency: TST / TIB x 100" in text  # definitions printed
    status = next(e for e in events if e["type"] == "status")
    assert status["message"] in text and short_night.name in text
    n_desat3 = len({e["id"] for e in events if e.get("code") == "desat3"})
    assert re.search(rf"<td>desat3</td>\s*<td>{n_desat3}</td>", text)
    assert "SpO2 (spo2, 1 Hz)" in text and "spo2,hr" in text


def test_pdf_report_is_one_page(short_night, short_replay, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    out = tmp_path / "night.pdf"
    assert cli(["report", str(short_replay[0]), "--recording", str(short_night), "--out",
                str(out)]) == 0
    reader = pypdf.PdfReader(out)
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    status = next(e for e in short_replay[2] if e["type"] == "status")
    for needle in ("Night report: hugcdn-D2-45min.edf", "Sleep statistics", "TIB", "ODI3",
                   "T90", "desat3", "probe_off", "hypnogram, engine (causal)", "SpO2 (%)",
                   "model: " + status["message"][:30]):
        assert needle in text, needle
    assert reader.metadata.title == "Night report: hugcdn-D2-45min.edf"


def test_report_refuses_other_formats(short_night, tmp_path, capsys):
    assert cli(["report", str(short_night), "--out", str(tmp_path / "r.docx")]) == 2
    assert "--out must end in .html or .pdf" in capsys.readouterr().err
