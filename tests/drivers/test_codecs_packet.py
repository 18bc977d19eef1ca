"""A decoded packet's length is its number of samples (the sequence tracker counts by it)."""

from __future__ import annotations

import numpy as np

from sleepstream.drivers.codecs import decode_packet, encode_packet


def test_packet_length_is_its_sample_count() -> None:
    for n in (1, 7, 256):
        p = decode_packet(encode_packet(
            seq=3, t0=10.0, fs=256.0, unit="uV", samples=np.arange(n, dtype=np.float32)))
        assert len(p) == n == p.samples.shape[0]
        assert (p.seq, p.t0, p.fs, p.unit) == (3, 10.0, 256.0, "uV")
