"""A decoded packet's length is its number of samples (the sequence tracker counts by it)."""

from __future__ import annotations

import math
import warnings

import msgpack
import numpy as np
import pytest

from sleepstream.drivers.codecs import DEFAULT_LIMITS, CodecLimits, decode_packet, encode_packet
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


def _raw(**fields: object) -> bytes:
    """A device payload packed by hand: the valid defaults, with ``fields`` overriding them."""
    body = {"v": 1, "seq": 0, "t0": 0.0, "fs": 1.0, "unit": "", "samples": [1.0]} | fields
    return bytes(msgpack.packb(body, use_bin_type=True))


def _reason(payload: bytes, limits: CodecLimits = DEFAULT_LIMITS) -> str | None:
    try:
        decode_packet(payload, limits=limits)
    except PayloadError as exc:
        return exc.reason
    return None


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("v", True, "version"),  # a bool is not the integer 1
        ("seq", 2**62 - 1, None), ("seq", 2**62, "bad_seq"), ("seq", 1.0, "bad_seq"),
        ("t0", 1e12, None), ("t0", -1e12, None), ("t0", 1e12 + 1, "bad_t0"),
        ("t0", -1e12 - 1, "bad_t0"), ("t0", math.nan, "bad_t0"), ("t0", True, "bad_t0"),
        ("t0", "0", "bad_t0"), ("t0", 12, None),
        ("fs", 0.01, None), ("fs", 8192.0, None), ("fs", 0.0099, "bad_rate"),
        ("fs", 8192.5, "bad_rate"), ("fs", True, "bad_rate"), ("fs", math.nan, "bad_rate"),
        ("fs", 256, None),
        ("unit", "u" * 16, None), ("unit", "u" * 17, "bad_unit"), ("unit", "u\n", "bad_unit"),
        ("unit", "µV", None), ("unit", b"uV", "bad_unit"),
        ("samples", [True], "bad_samples"), ("samples", [1, 2.5, -(2**63)], None),
        ("samples", [1.0, None], "bad_samples"), ("samples", b"\0" * 8, None),
        ("samples", b"\0" * 5, "bad_samples"), ("samples", [math.inf], "non_finite"),
        ("samples", [-math.inf, 1.0], "non_finite"),
    ],
)
def test_field_boundaries(field: str, value: object, reason: str | None) -> None:
    assert _reason(_raw(**{field: value})) == reason


def test_integer_times_and_rates_decode_as_floats() -> None:
    p = decode_packet(_raw(t0=12, fs=256, samples=[1, 2, 3]))
    assert (p.t0, p.fs) == (12.0, 256.0)
    assert type(p.t0) is float and type(p.fs) is float
    assert p.samples.dtype == np.float32 and p.samples.tolist() == [1.0, 2.0, 3.0]


def test_the_byte_cap_is_inclusive() -> None:
    payload = _raw(samples=b"\0" * 400)
    assert _reason(payload, CodecLimits(max_bytes=len(payload))) is None
    with pytest.raises(PayloadError) as err:
        decode_packet(payload, limits=CodecLimits(max_bytes=len(payload) - 1))
    assert err.value.reason == "too_large"
    assert f"payload of {len(payload)} bytes exceeds the {len(payload) - 1} cap" in str(err.value)


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_bytearray_and_memoryview_payloads_are_decoded(wrap: type) -> None:
    payload = encode_packet(seq=5, t0=1.0, fs=2.0, unit="V", samples=[1.0, 2.0])
    p = decode_packet(wrap(payload))
    assert p.seq == 5 and p.samples.tolist() == [1.0, 2.0]


def test_a_text_payload_is_a_bad_type() -> None:
    with pytest.raises(PayloadError) as err:
        decode_packet("{}")  # type: ignore[arg-type]
    assert err.value.reason == "bad_type" and str(err.value) == "payload must be bytes, got str"


def test_an_empty_extension_reaches_the_extension_hook_and_is_refused() -> None:
    """Extensions with data are refused by the size cap; an empty one by the hook."""
    payload = msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "",
                             "samples": msgpack.ExtType(7, b"")})
    with pytest.raises(PayloadError) as err:
        decode_packet(payload)
    assert err.value.reason == "bad_type"
    assert str(err.value) == "msgpack extension type 7 is not allowed"


def test_non_string_map_keys_are_not_msgpack() -> None:
    payload = msgpack.packb({"v": 1, "seq": 0, "t0": 0, "fs": 1, "unit": "", "samples": [1],
                             5: 1})
    assert _reason(payload) == "not_msgpack"


@pytest.mark.parametrize(("n_keys", "reason"), [(32, "unknown_field"), (33, "not_msgpack")])
def test_a_map_of_more_than_32_keys_is_refused_by_the_unpacker(n_keys: int, reason: str) -> None:
    extra = {f"k{i}": 0 for i in range(n_keys - 6)}
    assert _reason(_raw(**extra)) == reason


def test_an_oversized_sample_array_is_refused_by_the_unpacker() -> None:
    """As a msgpack array, the sample cap bounds msgpack's own allocation."""
    limits = CodecLimits(max_samples=100)
    with pytest.raises(PayloadError) as err:
        decode_packet(_raw(samples=[0.0] * 101), limits=limits)
    assert err.value.reason == "not_msgpack"
    assert _reason(_raw(samples=[0.0] * 100), limits) is None


def test_a_long_string_is_refused_by_the_unpacker() -> None:
    payload = _raw(unit="u" * 300)
    assert _reason(payload, CodecLimits(max_bytes=200)) == "too_large"
    assert _reason(payload, CodecLimits(max_bytes=len(payload))) == "bad_unit"


@pytest.mark.parametrize("as_list", [False, True])
def test_scalar_and_two_dimensional_samples_are_flattened(as_list: bool) -> None:
    for samples, flat in ((2.5, [2.5]), ([[1.0], [2.0], [3.0]], [1.0, 2.0, 3.0])):
        p = decode_packet(encode_packet(seq=0, t0=0.0, fs=1.0, unit="", samples=samples,
                                        as_list=as_list))
        assert p.samples.tolist() == flat
