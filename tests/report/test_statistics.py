"""Sleep statistics against YASA on the 20 expert Sleep-EDF hypnograms, and event statistics."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from sleepstream.drivers.edf import read_recording
from sleepstream.report.hypnogram import Hypnogram
from sleepstream.report.night import expert_hypnogram
from sleepstream.report.statistics import event_statistics, scored_events, sleep_statistics

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "sleep-edf-hypnograms"
FILES = sorted(DATA.glob("*-Hypnogram.edf")) if DATA.is_dir() else []
SHARED = ("TIB", "SPT", "WASO", "TST", "SE", "SME", "SOL", "N1", "N2", "N3", "REM", "NREM",
          "%N1", "%N2", "%N3", "%REM", "%NREM")


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.skipif(len(FILES) != 20, reason="../shared/data/sleep-edf-hypnograms not present")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name.split("-")[0])
def test_statistics_equal_yasa_on_sleep_edf(path: Path) -> None:
    yasa = pytest.importorskip("yasa")
    hyp = expert_hypnogram(read_recording(path))
    assert hyp is not None and len(hyp) > 1000
    ours = hyp.statistics()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        theirs = yasa.sleep_statistics(hyp.codes(), sf_hyp=1 / 30)
    for key in SHARED:
        assert _same(ours[key], theirs[key]), (key, ours[key], theirs[key])
    assert _same(ours["REM_latency"], theirs["Lat_REM"] - theirs["SOL"])
    labels = {-2: "UNS", 0: "WAKE", 1: "N1", 2: "N2", 3: "N3", 4: "REM"}
    obj = yasa.Hypnogram([labels[c] for c in hyp.codes()], n_stages=5, freq="30s")
    new = obj.sleep_statistics()
    for key in ("SFI", "TST", "SE"):
        assert math.isclose(ours[key], new[key], abs_tol=1e-4), (key, ours[key], new[key])
    assert math.isclose(ours["W"], new["WAKE"], abs_tol=1e-4)


def test_sleep_statistics_small_hypnogram_by_hand() -> None:
    st = ["W", "W", "N1", "N2", "N2", "W", None, "N2", "REM", "REM", "W", "W"]
    s = sleep_statistics(st)
    assert s["TIB"] == 6.0 and s["SPT"] == 4.0 and s["TST"] == 3.0  # epochs 2..9
    assert s["SOL"] == 1.0 and s["WASO"] == 0.5 and s["REM_latency"] == 3.0
    assert s["awakenings"] == 2.0 and s["unscored"] == 0.5
    assert s["stage_shifts"] == 4.0  # N1>N2, N2>W, W>N2 (over the unscored epoch), N2>REM
    assert math.isclose(s["SFI"], 2 / (3 / 60))
    empty = sleep_statistics(["W", "W", None])
    assert empty["TST"] == 0 and math.isnan(empty["SOL"]) and math.isnan(empty["%REM"])


def test_a_night_the_model_abstained_on_has_no_stage_figures() -> None:
    """Unscored is not awake: with no epoch staged, TST, SE, minutes per stage, awakenings are
    n/a (not 0 % efficiency); only time in bed and the unscored minutes stand."""
    s = sleep_statistics([None] * 20)
    assert s["TIB"] == 10.0 and s["unscored"] == 10.0
    assert all(math.isnan(v) for k, v in s.items() if k not in ("TIB", "unscored")), s
    one = sleep_statistics([None] * 19 + ["W"])  # one staged epoch: figures again
    assert one["TST"] == 0.0 and one["SE"] == 0.0 and one["awakenings"] == 0.0


def test_event_statistics_from_trends_and_events() -> None:
    spo2 = np.full(600, 95.0)
    spo2[100:160] = 88.0  # 60 s below 90 %
    spo2[500:] = np.nan  # probe off: not counted
    hr = np.concatenate([np.full(300, 60.0), np.full(300, 70.0)])
    events = [
        {"type": "alert", "id": "b/af/1", "code": "af", "state": "active", "onset": 10.0,
         "end": None},
        {"type": "alert", "id": "b/af/1", "code": "af", "state": "ended", "onset": 10.0,
         "end": 70.0},
        {"type": "event", "code": "desat3", "onset": 100.0, "end": 160.0},
        {"type": "index", "t": 600.0, "odi3": 6.0, "odi4": None, "ahi": None,
         "apnea_minutes_per_hour": 12.0},
    ]
    s = event_statistics(events, spo2=spo2, hr=hr, stages=["W"] * 10 + ["N2"] * 10,
                         cardiac_s=600.0)
    assert math.isclose(s["T90"], 100 * 60 / 500) and s["SpO2_min"] == 88.0  # of valid time
    assert s["HR_W"] == 60.0 and s["HR_N2"] == 70.0 and math.isnan(s["HR_REM"])
    assert s["ODI3"] == 6.0 and math.isnan(s["ODI4"]) and s["apnea_minutes_per_h"] == 12.0
    assert math.isclose(s["AF_burden"], 10.0)
    assert scored_events(events) == [("af", 10.0, 60.0), ("desat3", 100.0, 60.0)]


def test_hypnogram_rejects_unknown_stage() -> None:
    with pytest.raises(ValueError, match="unknown stages"):
        Hypnogram(("W", "S2"))
