"""The report's validity section: per staging path, what the shipped model may claim and its
real-data figures (from the model's own table), whether this recording fed that path, and the
epochs it staged; an oximetry night feeds only the token path, which abstains; a real EEG nap
is staged through the EEG spectral path; the apnea minutes' figures, as their events cite them."""

from __future__ import annotations

import json
from pathlib import Path

import pypdf
import pytest

import sleepstream
from sleepstream.engine.app.cli import main as cli
from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR
from sleepstream.report.night import Night
from sleepstream.report.validity import (
    CLASS_NAMES,
    PATH_NAMES,
    minute_note,
    model_dir_from_status,
    validity_note,
)

NAP = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nap-eeg" / "nap-eeg.edf"
SHIPPED = json.loads((DEFAULT_MODEL_DIR / "spectral.json").read_text())["validity"]


def _row(table, path):
    return table.set_index("path").loc[PATH_NAMES[path]]


def test_oximetry_night_feeds_only_the_token_path_which_abstains(short_night, short_replay):
    from sleepstream.drivers.edf import read_recording

    events = Night.from_jsonl(short_replay[0])
    assert model_dir_from_status(events.info.model, DEFAULT_MODEL_DIR) == DEFAULT_MODEL_DIR
    night = Night.from_jsonl(short_replay[0], read_recording(short_night),
                             model_dir=DEFAULT_MODEL_DIR)
    table = night.validity()
    assert len(table) == len(SHIPPED)
    tokens = _row(table, "tokens")
    assert tokens["claims"] == CLASS_NAMES[SHIPPED["tokens"]["classes"]]
    assert (tokens["input here"], tokens["epochs here"]) == ("yes", 0)
    eeg = _row(table, "eeg")
    assert eeg["input here"] == "no" and eeg["epochs here"] == 0
    assert eeg["kappa"] == SHIPPED["eeg"]["kappa"]
    assert eeg["majority accuracy"] == SHIPPED["eeg"]["majority_accuracy"]
    assert night.stages["stage"].isna().all()
    assert "abstained" in validity_note(night)


def _pages(short_night, short_replay, tmp_path) -> tuple[str, str]:
    """``sleepstream report`` of the short night as HTML and PDF: (the HTML, the PDF's text)."""
    html_out, pdf_out = tmp_path / "r.html", tmp_path / "r.pdf"
    for out in (html_out, pdf_out):
        assert cli(["report", str(short_replay[0]), "--recording", str(short_night), "--out",
                    str(out)]) == 0
    return html_out.read_text(), pypdf.PdfReader(pdf_out).pages[0].extract_text()


def test_report_pages_carry_the_validity_table(short_night, short_replay, tmp_path):
    text, page = _pages(short_night, short_replay, tmp_path)
    assert "What the model has shown on real data" in text
    assert f"<td>{SHIPPED['eeg']['kappa']:.3f}</td>" in text
    assert SHIPPED["eeg"]["source"] in text and "none (abstains)" in text
    assert "What the model has shown on real data" in page
    assert f"{SHIPPED['eeg_below_100hz']['accuracy']:.3f}" in page


def test_real_eeg_nap_is_staged_through_the_eeg_path():
    if not NAP.is_file():
        pytest.skip("the shared nap recording (../shared/data/nap-eeg) is not present")
    night = sleepstream.analyze(NAP, progress=False)
    table = night.validity()
    staged = int(night.stages["stage"].notna().sum())
    assert staged > 0
    eeg = _row(table, "eeg")  # 256-Hz EEG
    assert (eeg["input here"], eeg["epochs here"]) == ("yes", staged)
    assert _row(table, "eeg_below_100hz")["input here"] == "no"
    assert eeg["claims"] == CLASS_NAMES[SHIPPED["eeg"]["classes"]]
    assert "EEG spectral" in validity_note(night)


def test_no_model_means_no_claims(short_night):
    night = sleepstream.analyze(short_night, model="none", progress=False)
    assert night.info.model_dir is None
    assert night.validity().empty
    assert validity_note(night) == "No model staged this night."


def test_apnea_minutes_cite_their_figures_in_the_report(short_night, short_replay, tmp_path):
    from sleepstream.engine.alerts import apnea_minutes as am

    figures = am.load_validation()
    night = Night.from_jsonl(short_replay[0])
    table = night.minute_validity().set_index("apnea-minute model")
    minutes = [e for e in short_replay[2] if e["type"] == "apnea_minute"]
    assert int(table[["minutes scored here", "not scored here"]].sum().sum()) == len(minutes)
    both = table.loc["SpO2 + heart rate"]  # the oximetry night: SpO2 and HR
    assert both["minutes scored here"] >= 30
    assert both["accuracy"] == figures["spo2_hr"]["accuracy"]
    assert both["AUROC"] == figures["spo2_hr"]["auroc"]
    assert both["index r"] == figures["spo2_hr"]["index_pearson_r"]
    assert both["measured on"].startswith("oximetry-hugcdn, 56 records")
    text, page = _pages(short_night, short_replay, tmp_path)
    assert "Apnea minutes: what the classifier has shown on real data" in text
    assert f"<td>{figures['spo2_hr']['auroc']:.3f}</td>" in text
    assert f"AUROC {figures['spo2_hr']['auroc']:.3f}" in " ".join(page.split())


def test_no_apnea_minutes_no_minute_claims(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"type": "status", "bed": "b", "t": 0.0, "message": "x"}) + "\n")
    night = Night.from_jsonl(path)
    assert night.minute_validity().empty
    assert minute_note(night) == "No apnea minutes were scored."


def test_apnea_minutes_as_a_table_beside_the_expert_labels(short_replay):
    night = Night.from_jsonl(short_replay[0])
    table = night.apnea_minutes
    events = [e for e in short_replay[2] if e["type"] == "apnea_minute"]
    assert list(table.columns) == ["minute", "start", "prob", "apnea", "model"]
    assert table["minute"].tolist() == [e["minute"] for e in events] == list(range(len(events)))
    assert (table["start"] == 60.0 * table["minute"]).all()
    scored = table[table["apnea"].notna()]
    assert len(scored) >= len(table) - 3
    assert ((scored["prob"] >= 0.5) == scored["apnea"].astype(bool)).all()  # default threshold
    assert table[table["apnea"].isna()]["prob"].isna().all()  # an abstained minute: no prob
