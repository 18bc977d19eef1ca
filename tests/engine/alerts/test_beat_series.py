"""Per-second heart rate, beat gap and AF score from a beat track, by hand.

Heart rate at the end of a second is 60 / the mean of the last four RR intervals, only while
the last beat is under 4 s old and at least five beats are in; the gap is the time since the
last beat (or since the track became usable); both are unknown in the first second of a usable
stretch. Beat times are multiples of 0.25 s, so every value is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from sleepstream.engine.alerts import heart


def _track(beats: list[float], usable_since: float = 0.0) -> heart.BeatTrack:
    track = heart.new_track("ecg")
    n = track.times.size
    track.times = np.concatenate([np.full(n, np.nan), beats])[-n:]
    track.usable_since = usable_since
    return track


def _series(track: heart.BeatTrack, ends: list[float]) -> tuple[np.ndarray, ...]:
    return heart._beat_series(track, np.asarray(ends, dtype=np.float64))


def test_heart_rate_is_60_over_the_mean_of_the_last_four_rr() -> None:
    beats = [0.0, 1.0, 2.0, 3.0, 4.0, 4.5, 5.0, 5.5, 6.0]
    hr, gap, _ = _series(_track(beats), [4.25, 5.25, 6.25])
    # end 4.25: RR 1,1,1,1 -> 60; end 5.25: 1,1,0.5,0.5 -> 80; end 6.25: 0.5 x 4 -> 120
    np.testing.assert_array_equal(hr, [60.0, 80.0, 120.0])
    np.testing.assert_array_equal(gap, [0.25, 0.25, 0.25])


def test_heart_rate_needs_five_beats_and_a_beat_under_four_seconds_old() -> None:
    beats = [0.0, 1.0, 2.0, 3.0, 4.0]
    hr, gap, _ = _series(_track(beats), [3.5, 4.5, 7.75, 8.0, 8.25])
    assert np.isnan(hr[0])  # four beats: three RR intervals
    assert hr[1] == 60.0 and hr[2] == 60.0  # 3.75 s since the last beat
    assert np.isnan(hr[3]) and np.isnan(hr[4])  # 4 s and more: too old
    np.testing.assert_array_equal(gap, [0.5, 0.5, 3.75, 4.0, 4.25])


def test_gap_counts_from_the_usable_start_and_nothing_in_its_first_second() -> None:
    track = _track([1.0, 2.0], usable_since=10.0)  # beats before the usable stretch
    hr, gap, score = _series(track, [10.5, 11.0, 13.5])
    assert np.isnan(gap[0]) and np.isnan(hr[0])  # under a second since usable
    assert gap[1] == 1.0 and gap[2] == 3.5  # from usable_since, not from the old beats
    assert np.isnan(hr).all() and np.isnan(score).all()
    empty = _track([], usable_since=0.0)
    hr, gap, score = _series(empty, [2.0])
    assert gap[0] == 2.0 and np.isnan(hr[0]) and np.isnan(score[0])
    unusable = _track([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    unusable.usable_since = None
    assert all(np.isnan(a).all() for a in _series(unusable, [5.5]))


def test_af_score_needs_32_intervals_and_is_zero_for_a_regular_rhythm() -> None:
    regular = list(np.arange(0.0, 32.0, 1.0))  # 32 beats: 31 RR intervals
    assert np.isnan(_series(_track(regular), [31.5])[2][0])
    regular.append(32.0)
    assert _series(_track(regular), [32.5])[2][0] == 0.0
    beats = [0.0]  # RR 1 + 0.1 * (+1, -1, ...): every successive difference 0.2, all turning
    for i in range(40):
        beats.append(beats[-1] + 1.0 + (0.1 if i % 2 else -0.1))
    score = _series(_track(beats), [beats[-1] + 0.5])[2][0]
    assert score == 0.0  # a turning-point ratio of 1 is not random: an alternating rhythm


@pytest.mark.parametrize(("modality", "params"), [("ecg", "ECG"), ("ppg", "PPG")])
def test_new_track_takes_the_modality_s_beat_detector(modality: str, params: str) -> None:
    track = heart.new_track(modality)
    assert track.params is getattr(heart.beat_mod, params)
    assert track.times.shape == (heart.RR_WINDOW + 1,) and np.isnan(track.times).all()
    assert track.peaks is None and track.usable_since is None
