"""A decoded packet's length is its number of samples (the sequence tracker counts by it)."""

from __future__ import annotations

import warnings

import msgpack
import numpy as np
import pytest

from sleepstream.drivers.codecs import CodecLimits, decode_packet, encode_packet
from sleepstream.engine.errors import PayloadError


def test_packet_length_is_its_sample_count() -> None:
    for n in (1, 7, 256):
        p = decode_packet(encode_packet(
            seq=3, t0=10.0, fs=256.0, unit="uV", samples=np.arange(n, dtype=np.float32)))
        assert len(p) == n == p.samples.shape[0]
        assert (p.seq, p.t0, p.fs, p.unit) == (3, 10.0, 256.0, "uV")


@pytest.mark.parametrize("as_list", [False, True])
def test_float64_samples_round_trip_as_float32(as_list: bool) -> None:
    x = np.linspace(-3.5, 3.5, 15)  # float64 in, exact in float32
    payload = encode_packet(seq=1, t0=0.0, fs=10.0, unit="", samples=x, as_list=as_list)
    p = decode_packet(payload)
    assert p.samples.dtype == np.float32 and len(p) == 15
    np.testing.assert_array_equal(p.samples, x.astype(np.float32))
    if not as_list:
        assert isinstance(msgpack.unpackb(payload, raw=False)["samples"], bytes)
        assert len(msgpack.unpackb(payload, raw=False)["samples"]) == 4 * 15


@pytest.mark.parametrize("as_list", [False, True])
def test_sample_cap_is_inclusive(as_list: bool) -> None:
    limits = CodecLimits(max_samples=100)
    for n, ok in ((100, True), (101, False)):
        payload = encode_packet(seq=0, t0=0.0, fs=10.0, unit="", samples=np.zeros(n),
                                as_list=as_list)
        if ok:
            assert len(decode_packet(payload, limits=limits)) == n
        else:
            with pytest.raises(PayloadError) as err:
                decode_packet(payload, limits=limits)
            assert err.value.reason in ("too_many_samples", "not_msgpack")
            if not as_list:
                assert err.value.reason == "too_many_samples"
                assert "101 samples exceed the cap of 100" in str(err.value)


def test_as_list_encodes_a_list_of_floats() -> None:
    payload = encode_packet(seq=0, t0=0.0, fs=1.0, unit="", samples=np.array([1.5, 2.0]),
                            as_list=True)
    assert msgpack.unpackb(payload, raw=False)["samples"] == [1.5, 2.0]


def test_a_value_beyond_float32_is_non_finite_without_a_warning() -> None:
    payload = msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "",
                             "samples": [1.0, 1e300]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the float32 overflow is expected, not warned about
        with pytest.raises(PayloadError) as err:
            decode_packet(payload)
    assert err.value.reason == "non_finite"
