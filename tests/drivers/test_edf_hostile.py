"""Hostile and broken EDF files: one clear RecordingError each, never a traceback or a huge
allocation (headers are checked before their numbers size anything)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sleepstream.drivers.edf import read_recording
from sleepstream.engine.errors import RecordingError
from tests.drivers.test_edf import _write_edf

FUZZ_EXAMPLES = int(os.environ.get("SLEEPSTREAM_FUZZ_EXAMPLES", "2000"))
_WIDTHS = {"label": (0, 16), "physical_min": (104, 8), "physical_max": (112, 8),
           "digital_min": (120, 8), "digital_max": (128, 8), "samples": (216, 8)}


def _set(raw: bytearray, at: int, width: int, value: str) -> None:
    raw[at : at + width] = value.encode("latin-1").ljust(width)[:width]


def _set_signal(raw: bytearray, field: str, i: int, value: str) -> None:
    ns = int(raw[252:256])
    offset, width = _WIDTHS[field]
    _set(raw, 256 + offset * ns + i * width, width, value)


def _hostile(tmp_path: Path, edit, **kw) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "x.edf"
    _write_edf(path, seconds=4, **kw)
    raw = bytearray(path.read_bytes())
    edit(raw)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: _set_signal(r, "samples", 0, "0"), "samples per record"),
    (lambda r: _set_signal(r, "samples", 0, "99999999"), "samples per record"),
    (lambda r: _set(r, 244, 8, "-1"), "record duration"),
    (lambda r: _set(r, 244, 8, "nan"), "record duration"),
    (lambda r: _set(r, 244, 8, "1e-9"), "record duration"),
    (lambda r: _set(r, 252, 4, "9999"), "signals"),
    (lambda r: _set(r, 184, 8, "99999999"), "header bytes"),
    (lambda r: _set_signal(r, "digital_min", 1, "32767") or _set_signal(
        r, "digital_max", 1, "-32768"), "digital minimum"),  # inverted: SpO2 5 % read for 95
    (lambda r: _set_signal(r, "physical_min", 0, "7") or _set_signal(
        r, "physical_max", 0, "7"), "physical minimum = maximum"),
    (lambda r: _set(r, 236, 8, "-5"), "data records"),
])
def test_hostile_headers_are_refused_in_one_line(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RecordingError, match=message) as info:
        read_recording(_hostile(tmp_path, edit))
    assert "\n" not in str(info.value)


def _tal(raw: bytearray, k: int, text: bytes) -> None:
    ns = int(raw[252:256])
    samples = [int(raw[256 + ns * 216 + 8 * i : 256 + ns * 216 + 8 * i + 8]) for i in range(ns)]
    start = 256 * (ns + 1) + k * 2 * sum(samples) + 2 * sum(samples[:-1])
    raw[start : start + 2 * samples[-1]] = text.ljust(2 * samples[-1], b"\x00")


@pytest.mark.parametrize(("onsets", "message"), [
    ((0, 3, 2, 1), "goes back in time"),  # reversed
    ((0, 0.5, 1, 1.5), "overlaps"),  # would silently lose half the samples
    ((0, 1, 2, 1e11), "gaps add up"),  # 36 TiB of NaN
    ((0, 1, 2, 1e7), "gaps add up"),  # 2,778 h of NaN from a small file
    ((0, 1, 2, float("nan")), "finite|readable"),
])
def test_hostile_edf_plus_d_onsets_are_refused(tmp_path: Path, onsets, message: str) -> None:  # type: ignore[no-untyped-def]
    def edit(raw: bytearray) -> None:
        for k, onset in enumerate(onsets):
            _tal(raw, k, f"+{onset}\x14\x14\x00".encode())
    with pytest.raises(RecordingError, match=message):
        read_recording(_hostile(tmp_path, edit, discontinuous_after=0, gap_s=0))


def test_garbage_annotation_bytes_are_an_error_or_dropped(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        garbage = rng.integers(0, 256, 60, dtype=np.uint8).tobytes()
        path = _hostile(tmp_path, lambda r, g=garbage: _tal(r, 0, b"+0\x14\x14\x00" + g))
        try:
            rec = read_recording(path)
        except RecordingError as exc:
            assert "\n" not in str(exc)
        else:
            assert all(a.text.isprintable() for a in rec.annotations)


def test_annotations_that_are_not_utf8_are_dropped_and_counted(tmp_path: Path) -> None:
    path = _hostile(tmp_path, lambda r: _tal(r, 1, b"+1\x14\x14\x00+1\x14\xff\xfe\x14\x00"))
    rec = read_recording(path)
    assert rec.dropped_annotations == 1
    assert [a.text for a in rec.annotations] == ["Sleep stage W"]


def test_a_truncated_file_is_reported_and_replayed_up_to_its_last_record(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cut.edf"
    _write_edf(path, seconds=20)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - (len(raw) - 768) // 4 - 7])
    with caplog.at_level(logging.WARNING, logger="sleepstream.drivers.edf"):
        rec = read_recording(path)
    assert rec.duration == 14.0
    assert any("truncated" in r.getMessage() and "20" in r.getMessage() for r in caplog.records)


def test_a_directory_or_an_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="directory"):
        read_recording(tmp_path)
    (tmp_path / "empty.edf").write_bytes(b"")
    with pytest.raises(RecordingError, match="not a valid EDF"):
        read_recording(tmp_path / "empty.edf")


def _fuzz_one(tmp_path: Path, header_edits: list[tuple[int, int]], tal: bytes, cut: int
              ) -> None:
    clean = tmp_path / "clean.edf"
    if not clean.exists():
        _write_edf(clean, seconds=2, discontinuous_after=0, gap_s=1)
    raw = bytearray(clean.read_bytes())
    _tal(raw, 1, tal)
    for at, byte in header_edits:
        raw[at] = byte
    path = tmp_path / "fuzz.edf"
    path.write_bytes(bytes(raw[: len(raw) - cut]))
    try:
        rec = read_recording(path)
    except RecordingError as exc:
        assert "\n" not in str(exc)
    else:
        assert rec.duration < 1e6


def _fuzz(share: float) -> settings:
    return settings(max_examples=int(FUZZ_EXAMPLES * share), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@_fuzz(0.75)
@given(header_edits=st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 255)), min_size=1,
                             max_size=8), cut=st.integers(0, 400))
def test_fuzzed_headers_never_raise_anything_else(
        tmp_path: Path, header_edits: list[tuple[int, int]], cut: int) -> None:
    _fuzz_one(tmp_path, header_edits, b"+1\x14\x14\x00", cut)


@_fuzz(0.25)
@given(tal=st.binary(max_size=40) | st.from_regex(rb"\A[+-][0-9.eE+-]{1,12}(\x15[0-9.]{1,6})?"
                                                  rb"\x14[ -~\x14\x00]{0,20}\x14\x00\Z"))
def test_fuzzed_annotation_bytes_never_raise_anything_else(tmp_path: Path, tal: bytes) -> None:
    _fuzz_one(tmp_path, [], tal, 0)


def test_discontinuities_and_annotations_are_capped(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from sleepstream.drivers import edf_records

    def gaps(raw: bytearray) -> None:
        for k, onset in enumerate((0, 2, 4, 6)):
            _tal(raw, k, f"+{onset}\x14\x14\x00".encode())
    path = _hostile(tmp_path, gaps, discontinuous_after=0, gap_s=0)
    assert read_recording(path).duration == 7.0
    monkeypatch.setattr(edf_records, "MAX_SEGMENTS", 2)
    with pytest.raises(RecordingError, match="more than 2 EDF\\+D discontinuities"):
        read_recording(path)
    monkeypatch.setattr(edf_records, "MAX_ANNOTATIONS", 0)
    rec = read_recording(_hostile(tmp_path, lambda r: None))
    assert rec.annotations == () and rec.dropped_annotations == 1  # kept none, counted it
