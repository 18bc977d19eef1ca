"""The payload codec: round trips, and every hostile payload rejected with a stable reason."""

from __future__ import annotations

import math

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleepstream.drivers.codecs import REASONS, CodecLimits, decode_packet, encode_packet
from sleepstream.engine.errors import PayloadError


def test_round_trip_bytes_and_list() -> None:
    x = np.linspace(-5, 5, 256, dtype=np.float32)
    for as_list in (False, True):
        p = decode_packet(encode_packet(seq=7, t0=1.5, fs=256.0, unit="uV", samples=x,
                                        as_list=as_list))
        assert (p.seq, p.t0, p.fs, p.unit) == (7, 1.5, 256.0, "uV")
        np.testing.assert_array_equal(p.samples, x)
        assert p.valid.all()


def test_nan_policy() -> None:
    x = np.array([1.0, np.nan, 3.0], dtype=np.float32)
    payload = encode_packet(seq=0, t0=0.0, fs=1.0, unit="%", samples=x)
    p = decode_packet(payload)
    assert p.valid.tolist() == [True, False, True]
    with pytest.raises(PayloadError) as err:
        decode_packet(payload, limits=CodecLimits(nan_policy="reject"))
    assert err.value.reason == "nan"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xc1", "not_msgpack"),
        (msgpack.packb([1, 2]), "not_a_map"),
        (msgpack.packb({"v": 2}), "version"),
        (msgpack.packb({"v": 1, "seq": 0}), "missing_field"),
        (msgpack.packb({"v": 1, "seq": -1, "t0": 0, "fs": 1, "unit": "", "samples": [1]}),
         "bad_seq"),
        (msgpack.packb({"v": 1, "seq": True, "t0": 0, "fs": 1, "unit": "", "samples": [1]}),
         "bad_seq"),
        (msgpack.packb({"v": 1, "seq": 0, "t0": math.inf, "fs": 1, "unit": "", "samples": [1]}),
         "bad_t0"),
        (msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1e9, "unit": "", "samples": [1]}),
         "bad_rate"),
        (msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": 5, "samples": [1]}),
         "bad_unit"),
        (msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "", "samples": []}), "empty"),
        (msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "", "samples": b"abc"}),
         "bad_samples"),
        (msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "", "samples": ["a"]}),
         "bad_samples"),
        (msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "", "samples": [1e300]}),
         "non_finite"),
        (msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "", "samples": 3}),
         "bad_type"),
        (msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "", "samples": [1], "x": 1}),
         "unknown_field"),
        (msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "",
                        "samples": b"\0" * 4 * 20000}), "too_large"),
        (msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "",
                        "samples": msgpack.ExtType(1, b"x")}), "not_msgpack"),
    ],
)
def test_rejections(payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as err:
        decode_packet(payload)
    assert err.value.reason == reason
    assert reason in REASONS


def test_sample_cap() -> None:
    payload = encode_packet(seq=0, t0=0.0, fs=1.0, unit="", samples=np.zeros(200))
    with pytest.raises(PayloadError) as err:
        decode_packet(payload, limits=CodecLimits(max_samples=100))
    assert err.value.reason == "too_many_samples"


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True), st.text(max_size=20), st.binary(max_size=64),
)
_value = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=6),
    max_leaves=20,
)
_near_valid = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 2, "1"]),
     "seq": _value | st.integers(min_value=-(2**63), max_value=2**63), "t0": _value,
     "fs": _value | st.floats(), "unit": _value | st.text(max_size=20),
     "samples": _value | st.binary(max_size=80) | st.lists(st.floats(), max_size=20)},
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), _value.map(msgpack.packb),
                 _near_valid.map(msgpack.packb)))
def test_hostile_payloads_only_raise_payload_error(payload: bytes) -> None:
    try:
        p = decode_packet(payload)
    except PayloadError as exc:
        assert exc.reason in REASONS
    else:
        assert p.samples.dtype == np.float32 and p.samples.shape == p.valid.shape
        assert len(p) > 0 and np.isfinite(p.samples[p.valid]).all()


def _pack(**fields: object) -> bytes:
    body = {"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "", "samples": [1.0]} | fields
    return bytes(msgpack.packb(body))


@pytest.mark.parametrize(
    ("payload", "reason", "says"),
    [
        (b"\xc1", "not_msgpack", "payload is not valid msgpack ("),
        (msgpack.packb([1, 2]), "not_a_map", "payload must be a map, got list"),
        (_pack(v=2), "version", "schema version 2 is not 1"),
        (msgpack.packb({"v": 1, "seq": 0}), "missing_field", "payload lacks the 't0' field"),
        (_pack(x=1), "unknown_field", "unknown fields ['x']"),
        (_pack(seq=-1), "bad_seq", "seq must be an integer in [0, 2**62), got -1"),
        (_pack(t0="a"), "bad_t0", "t0 must be a finite number of seconds, got 'a'"),
        (_pack(fs=0), "bad_rate", "fs must be in [0.01, 8192.0] Hz, got 0"),
        (_pack(unit=7), "bad_unit", "unit must be a short printable string, got 7"),
        (_pack(samples=b"abcdef"), "bad_samples", "6 sample bytes is not a multiple of 4"),
        (_pack(samples=[1.0, "x"]), "bad_samples", "sample array holds non-numbers"),
        (_pack(samples={"a": 1}), "bad_type", "samples must be bytes or an array, got dict"),
        (_pack(samples=[]), "empty", "packet holds no samples"),
        (_pack(samples=[1.0, math.inf]), "non_finite", "samples contain +-inf"),
    ],
)
def test_each_rejection_says_what_was_wrong(payload: bytes, reason: str, says: str) -> None:
    """The message goes into the rejected-payload log line an operator reads."""
    with pytest.raises(PayloadError) as err:
        decode_packet(payload)
    assert err.value.reason == reason
    assert str(err.value).startswith(says)


def test_the_nan_policy_reject_says_why() -> None:
    payload = encode_packet(seq=0, t0=0.0, fs=1.0, unit="", samples=[1.0, math.nan])
    with pytest.raises(PayloadError) as err:
        decode_packet(payload, limits=CodecLimits(nan_policy="reject"))
    assert str(err.value) == "samples contain NaN and the NaN policy is 'reject'"
    p = decode_packet(encode_packet(seq=0, t0=0.0, fs=1.0, unit="", samples=[1.0]),
                      limits=CodecLimits(nan_policy="reject"))
    assert p.valid.tolist() == [True]
