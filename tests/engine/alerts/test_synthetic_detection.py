"""Detectors against the exact ground truth of synthetic nights (``simulators.synthetic``).

Each night is generated, written as EDF+, read back and replayed through the real pipeline
(``build_engine``: EDF source, ring buffers, quality, AlertEngine) into a memory sink; detections
are matched to the annotated events with a tolerance window. The floors below sit under what the
detectors reached on these nights when the tests were written (printed with ``pytest -s``):

| night (h, seed) | apnea sens/PPV | hypopnea | desat-3 | AHI engine / truth* |
|---|---|---|---|---|
| osa-severe (1.5, 1) | 0.97 / 1.00 (12-s apnea missed) | 1.00 / 1.00 | 1.00 / 1.00 | 37.8 / 38.0 |
| osa-moderate (1.5, 1) | 1.00 / 1.00 | 1.00 / 1.00 | 1.00 / 1.00 | 18.2 / 18.0 |
| af-paroxysmal (2, 3) | AF: 3/3 episodes, 0 alarms in sinus rhythm, announced 46-66 s after onset |

*The engine's running AHI is per hour of valid airflow (it cannot tell sleep from wake without
stages), so it is compared with the annotated events per hour of recording; the generator's own
AHI is per hour of sleep (46.5 and 22.0 on these nights).
"""

from __future__ import annotations

import numpy as np
import pytest

from sleepstream.models.alert_replay import Track
from sleepstream.simulators.synthetic import cardiac
from sleepstream.simulators.synthetic.noise import smooth

from .harness import run
from .synthetic import intervals, match

TOL_S = 10.0  # an event and a detection match when they overlap, widened by this
WARM_UP_S = 60.0  # the generator's heart rate starts at its 35 bpm floor for ~40 s


@pytest.mark.parametrize(("profile", "floor"), [("osa-severe", 0.9), ("osa-moderate", 0.9)])
def test_apnea_hypopnea_and_ahi_against_annotations(synthetic, profile, floor):
    r = synthetic(profile, 1.5, 1)
    ev = r.night.events
    apneas, hypopneas = ev.of("Obstructive apnea", "Central apnea"), ev.of("Hypopnea")
    ap_sens, ap_ppv = match(intervals(r.events, "apnea"), apneas, TOL_S)
    hy_sens, hy_ppv = match(intervals(r.events, "hypopnea"), hypopneas, TOL_S)
    # an apnea is never reported as a hypopnea and vice versa
    wrong, _ = match(intervals(r.events, "hypopnea"), apneas, 0.0)
    print(f"{profile}: apnea sens {ap_sens:.3f} ppv {ap_ppv:.3f} (n={len(apneas)}), "
          f"hypopnea sens {hy_sens:.3f} ppv {hy_ppv:.3f} (n={len(hypopneas)})")
    assert len(apneas) >= 5 and len(hypopneas) >= 5
    assert ap_sens >= floor and ap_ppv >= floor
    assert hy_sens >= floor and hy_ppv >= floor
    assert wrong <= 0.1
    index = [e for e in r.events if e["type"] == "index"][-1]
    truth_rec = (len(apneas) + len(hypopneas)) / r.night.hours
    print(f"{profile}: running AHI {index['ahi']:.2f} vs annotated events per recording hour "
          f"{truth_rec:.2f} (per sleep hour {r.night.ahi:.2f})")
    assert index["ahi"] == pytest.approx(truth_rec, rel=0.10)


def test_desaturations_against_annotations(synthetic):
    r = synthetic("osa-severe", 1.5, 1)
    desats = list(r.night.events.desaturations)
    sens3, ppv3 = match(intervals(r.events, "desat3"), desats, TOL_S)
    deep = [e for e in desats if e.value >= 5.0]
    sens4, _ = match(intervals(r.events, "desat4"), deep, TOL_S)
    index = [e for e in r.events if e["type"] == "index"][-1]
    print(f"desat3 sens {sens3:.3f} ppv {ppv3:.3f} (n={len(desats)}); desat4 sens on >= 5 % "
          f"{sens4:.3f} (n={len(deep)}); ODI-3 {index['odi3']:.2f} vs "
          f"{len(desats) / r.night.hours:.2f} per recording hour")
    assert sens3 >= 0.95 and ppv3 >= 0.95
    assert sens4 >= 0.95
    assert index["odi3"] == pytest.approx(len(desats) / r.night.hours, rel=0.10)


def test_no_cardiac_alarms_on_osa_nights(synthetic):
    """Cyclic heart-rate variation of apnea is not AF, bradycardia or asystole."""
    for profile in ("osa-severe", "osa-moderate"):
        r = synthetic(profile, 1.5, 1)
        for code in ("af", "asystole", "tachycardia", "bradycardia"):
            late = [d for d in intervals(r.events, code) if d[2] > WARM_UP_S]
            assert late == [], (profile, code, late)


def test_af_detected_in_episodes_and_not_in_sinus_rhythm(synthetic):
    r = synthetic("af-paroxysmal", 2.0, 3)
    episodes = list(r.night.events.af)
    found = intervals(r.events, "af")
    sens, _ = match(found, episodes, 0.0)
    false = [d for d in found
             if not any(d[0] <= e.end + 60.0 and d[1] >= e.onset - 60.0 for e in episodes)]
    sinus_h = (r.night.hours * 3600 - sum(e.duration for e in episodes)) / 3600
    delays = [min(d[2] for d in found if d[0] <= e.end and d[1] >= e.onset) - e.onset
              for e in episodes if any(d[0] <= e.end and d[1] >= e.onset for d in found)]
    covered = sum(max(0.0, min(d[1], e.end) - max(d[0], e.onset))
                  for d in found for e in episodes) / sum(e.duration for e in episodes)
    print(f"AF: {len(episodes)} episodes, sens {sens:.3f}, alarms {len(found)}, false alarms "
          f"{len(false)} in {sinus_h:.2f} h of sinus rhythm, announced {np.round(delays, 1)} s "
          f"after onset, {covered:.2f} of AF time under an alarm")
    assert sens == 1.0
    assert len(found) == len(episodes)  # one alarm per episode, not a chattering series
    assert len(false) / sinus_h <= 0.5
    assert max(delays) <= 90.0
    assert covered >= 0.85
    assert all("ECG" in e["channels"] for e in r.events if e.get("code") == "af")


def _ecg_with(beats: np.ndarray, seconds: int) -> Track:
    fs = cardiac.ECG_FS
    n = int(seconds * fs)
    rng = np.random.default_rng(7)
    resp = np.sin(2 * np.pi * 0.25 * np.arange(n) / fs)
    x = cardiac.ecg(cardiac.Beats(beats, np.zeros(beats.size, bool)), n, np.zeros(n), resp, rng)
    return Track("ECG", "ecg", fs, x.astype(np.float32), np.ones(n, bool))


def _rhythm(spans: list[tuple[float, float, float]], seed: int = 3) -> np.ndarray:
    """Beat times for consecutive (start, end, bpm) spans, with mild sinus variability; a span
    with bpm 0 is a pause."""
    rng = np.random.default_rng(seed)
    out, t = [], spans[0][0] + 0.5
    for start, end, bpm in spans:
        t = max(t, start)
        if bpm == 0:
            t = end
            continue
        wobble = smooth(rng.standard_normal(int(end - start) + 2), 5) * 0.02
        while t < end:
            out.append(t)
            t += 60.0 / bpm * (1.0 + wobble[int(t - start)])
    return np.asarray(out)


def test_bradycardia_tachycardia_asystole_on_injected_segments():
    spans = [(0, 200, 62), (200, 260, 34), (260, 400, 62), (400, 460, 150), (460, 560, 62),
             (560, 566.5, 0), (566.5, 660, 62)]
    beats = _rhythm(spans)
    res = run([_ecg_with(beats, 660)], 660)
    got = {code: [(a.onset, a.emitted_at) for a in res.physiological
                  if a.code == code and a.end is None and a.extra.get("announced_at") ==
                  a.emitted_at] for code in ("bradycardia", "tachycardia", "asystole", "af")}
    print(got)
    # when the criterion is met in the data: the 4-beat mean rate crosses the limit, + delay
    rate = 60.0 / np.convolve(np.diff(beats), np.ones(4) / 4, mode="valid")
    at = beats[4:]
    brady_t = at[(at > 200) & (rate < 40)][0] + 10.0
    tachy_t = at[(at > 400) & (rate > 130)][0] + 10.0
    pause_t = beats[beats < 560][-1] + 4.0
    # criteria are evaluated per whole second (a second counts as met when the rate at its end
    # is past the limit), hence up to 1 s early
    assert len(got["bradycardia"]) == 1 and -1.0 <= got["bradycardia"][0][1] - brady_t <= 1.5
    assert len(got["tachycardia"]) == 1 and -1.0 <= got["tachycardia"][0][1] - tachy_t <= 1.5
    assert len(got["asystole"]) == 1 and -1.0 <= got["asystole"][0][1] - pause_t <= 1.5
    assert got["af"] == []
    assert res.technical == []  # a pause is not a flat trace: no leads-off alarm


def test_beat_times_keep_rr_precision_and_chunking():
    """Beats are timed at the band-passed QRS: sinus RR irregularity read from detected beats
    matches the true beats' (it read ~2.5x too high when timed at the integrator's maximum), and
    any split of the stream into chunks gives the same beats."""
    from sleepstream.engine.alerts import beats as bm

    true = _rhythm([(0, 300, 62)])
    ecg = _ecg_with(true, 300)

    def one_shot(x):
        st = bm.new_state(bm.ECG, ecg.fs, 0.0)
        return bm.step(st, x, np.ones(x.size, bool))

    found = one_shot(ecg.data)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(ecg.data.size, 200, replace=False))
    st = bm.new_state(bm.ECG, ecg.fs, 0.0)
    chunked = np.concatenate([bm.step(st, x, np.ones(x.size, bool))
                              for x in np.split(ecg.data, cuts)])
    np.testing.assert_array_equal(found, chunked)

    def irregularity(b):
        rr = np.diff(b)
        return float(np.sqrt(np.mean(np.diff(rr) ** 2)) / rr.mean())

    kept = true[true > found[0] - 0.1]
    assert found.size == kept.size
    assert abs(irregularity(found) - irregularity(kept)) < 0.005
