"""The one-page night report: HTML (self-contained, the figure embedded as PNG) or PDF (one A4
page drawn with matplotlib).

Both show the recording's metadata, the model and the modalities it staged from, the hypnogram
with confidence, SpO2 and heart-rate trends with events and alarms marked, the statistics table
and the event counts.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import pandas as pd
from matplotlib.figure import Figure

from sleepstream.engine.errors import SinkError
from sleepstream.report.plots import draw_night, night_figure
from sleepstream.report.validity import (
    PATH_NAMES,
    minute_note,
    minute_validity,
    validity_note,
    validity_table,
)

if TYPE_CHECKING:
    from sleepstream.report.night import Night

# The statistics a report shows, in report order.
REPORT_STATS = (
    "TIB", "SPT", "TST", "SE", "SME", "SOL", "WASO", "REM_latency", "N1", "N2", "N3", "REM",
    "%N1", "%N2", "%N3", "%REM", "awakenings", "SFI", "stage_shifts", "unscored",
    "AHI", "ODI3", "ODI4", "apnea_minutes_per_h", "T90", "SpO2_mean", "SpO2_min", "HR_mean",
    "HR_W", "HR_N1", "HR_N2", "HR_N3", "HR_REM", "AF_burden",
)


def write_report(night: Night, out: Path) -> Path:
    suffix = out.suffix.lower()
    if suffix not in (".html", ".htm", ".pdf"):
        raise SinkError(f"{out}: the report is written as .html or .pdf")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".pdf":
            write_pdf(night, out)
        else:
            out.write_text(render_html(night), encoding="utf-8")
    except OSError as exc:
        raise SinkError(f"cannot write the report to {out}: {exc}") from exc
    return out


def metadata(night: Night) -> list[tuple[str, str]]:
    """(label, text) rows about the recording and the run."""
    info = night.info
    start = info.start.strftime("%Y-%m-%d %H:%M:%S") if info.start else "not recorded"
    chans = ", ".join(f"{c.label} ({c.modality or '-'}, {c.fs:g} Hz)" for c in info.channels)
    return [
        ("recording", info.name), ("start", start),
        ("duration", f"{info.duration_s / 3600:.2f} h"),
        ("channels", chans or "none listed"),
        ("modalities present", ", ".join(info.modalities) or "not known"),
        ("model", info.model or "not stated"),
        ("generated", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]


def model_use(night: Night) -> pd.DataFrame:
    """Epochs per modality subset the engine staged from, with their mean confidence; the
    subsets the model was measured on are listed in its model card."""
    st = night.stages
    if st.empty:
        return pd.DataFrame(columns=["modalities", "epochs", "mean confidence"])
    st = st.assign(modalities=st["modalities"].replace("", "none (abstained)"))
    out = st.groupby("modalities").agg(epochs=("onset", "size"),
                                       conf=("confidence", "mean")).reset_index()
    return out.rename(columns={"conf": "mean confidence"})


def statistics_rows(night: Night) -> pd.DataFrame:
    table = night.statistics_table()
    return table.loc[[k for k in REPORT_STATS if k in table.index]]


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.0f}" if float(value).is_integer() and abs(value) >= 10 else f"{value:.1f}"


def render_html(night: Night) -> str:
    fig = night_figure(night)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    meta = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                   for k, v in metadata(night))
    stats = statistics_rows(night)
    stat_rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td class=num>{_fmt(r['value'])}</td>"
        f"<td>{html.escape(r['unit'])}</td><td>{html.escape(r['definition'])}</td></tr>"
        for k, r in stats.iterrows())
    counts = night.event_counts().to_html(index=False, border=0, classes="t")
    use = model_use(night).to_html(index=False, border=0, classes="t", float_format="%.2f")
    valid = validity_table(night)
    valid_html = (valid.to_html(index=False, border=0, classes="t", float_format="%.3f",
                                na_rep="-") if not valid.empty else "")
    note = html.escape(validity_note(night))
    minutes = minute_validity(night)
    minutes_html = ("<h2>Apnea minutes: what the classifier has shown on real data</h2>"
                    + minutes.to_html(index=False, border=0, classes="t", float_format="%.3f",
                                      na_rep="-") if not minutes.empty else "")
    title = f"Night report: {html.escape(night.info.name)}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font:13px/1.4 system-ui,sans-serif;max-width:1100px;margin:1em auto;color:#222}}
h1{{font-size:20px}} h2{{font-size:15px;margin:1em 0 .3em}} img{{width:100%}}
table{{border-collapse:collapse}} th,td{{padding:2px 8px;text-align:left;vertical-align:top}}
tr:nth-child(even){{background:#f4f4f4}} .num{{text-align:right;font-variant-numeric:tabular-nums}}
.cols{{display:flex;gap:2em;flex-wrap:wrap}}
</style></head><body>
<h1>{title}</h1>
<table>{meta}</table>
<h2>Hypnogram and trends</h2>
<img alt="hypnogram with confidence, SpO2 and heart rate" src="data:image/png;base64,{png}">
<div class=cols><div><h2>Sleep statistics</h2>
<table><tr><th>statistic</th><th>value</th><th>unit</th><th>definition</th></tr>{stat_rows}
</table></div>
<div><h2>Events and alarms</h2>{counts}
<h2>Model and modalities</h2>{use}
<p>Stages are causal (each epoch staged when it ended).</p></div></div>
<h2>What the model has shown on real data</h2>
<p>{note}</p>{valid_html}{minutes_html}
</body></html>
"""


def write_pdf(night: Night, out: Path) -> None:
    """One A4 portrait page: header, panels, statistics and counts tables."""
    with mpl.rc_context({"pdf.fonttype": 42, "font.size": 7}):  # TrueType: text extractable
        fig = Figure(figsize=(8.27, 11.69), layout="constrained")
        panels: Any = fig.subfigures(4, 1, height_ratios=[1.2, 4.4, 3.6, 1.1])
        top, mid, bottom, foot = panels
        _header(top, night)
        draw_night(mid, night)
        cols: Any = bottom.subfigures(1, 3, width_ratios=[1.0, 1.0, 1.15])
        stats = [[k, _fmt(r["value"]), r["unit"]] for k, r in statistics_rows(night).iterrows()]
        split = REPORT_STATS.index("AHI")
        _table(cols[0], stats[:split], ["statistic", "value", "unit"], "Sleep statistics")
        _table(cols[1], stats[split:], ["statistic", "value", "unit"],
               "Breathing, SpO2, heart")
        counts = night.event_counts()
        rows = [[str(a), str(b), str(c)] for a, b, c in counts.itertuples(index=False)]
        use = model_use(night)
        rows += [["model input", str(m), f"{n} ep, conf {c:.2f}"]
                 for m, n, c in use.itertuples(index=False)]
        _table(cols[2], rows or [["-", "none", "0"]], ["what", "code", "count"],
               "Events, alarms, model input")
        _validity(foot, night)
        fig.savefig(out, format="pdf", metadata={"Title": f"Night report: {night.info.name}",
                                                 "Creator": "sleepstream"})


def _validity(sub: Any, night: Night) -> None:
    """The model's real-data validity table (the measured-on column left to the HTML)."""
    valid = validity_table(night)
    ax = sub.add_subplot()
    ax.axis("off")
    ax.set_title("What the model has shown on real data", loc="left", fontsize=8)
    ax.text(0.0, 1.0, validity_note(night) + " " + minute_note(night), fontsize=6.5, va="top",
            wrap=True, transform=ax.transAxes)
    if valid.empty:
        return
    valid = valid.assign(path=[_SHORT_PATHS.get(p, p) for p in valid["path"]])
    cols = [c for c in valid.columns if c != "measured on"]
    rows = [[_cell(v) for v in row] for row in valid[cols].itertuples(index=False)]
    widths = [0.22, 0.16, 0.09, 0.09, 0.12, 0.08, 0.1, 0.1]
    table = ax.table(cellText=rows, colLabels=cols, colWidths=widths, cellLoc="left",
                     bbox=(0.0, 0.0, 1.0, 0.8))
    table.auto_set_font_size(False)
    table.set_fontsize(6.5)


_SHORT_PATHS = {v: k for k, v in PATH_NAMES.items()} | {
    PATH_NAMES["eeg"]: "EEG spectral (>= 100 Hz)",
    PATH_NAMES["eeg_below_100hz"]: "EEG spectral (< 100 Hz)",
    PATH_NAMES["tokens"]: "transformer (tokens)"}


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _header(sub: Any, night: Night) -> None:
    sub.text(0.01, 0.95, f"Night report: {night.info.name}", fontsize=13, weight="bold",
             va="top")
    lines = [f"{k}: {v}" for k, v in metadata(night)]
    sub.text(0.01, 0.72, "\n".join(lines), fontsize=7, va="top", wrap=True)


def _table(sub: Any, rows: list[list[str]], header: list[str], title: str) -> None:
    ax = sub.add_subplot()
    ax.axis("off")
    ax.set_title(title, loc="left", fontsize=8)
    table = ax.table(cellText=rows, colLabels=header, loc="upper left", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(6.5)
    table.scale(1.0, 0.95)
