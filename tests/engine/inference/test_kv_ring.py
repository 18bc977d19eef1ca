"""The ring KV cache's write rule on numpy caches (what the onnxruntime backend uses)."""

from __future__ import annotations

import numpy as np

from sleepstream.engine.inference.kv_ring import ring_slot, write_rows


def test_ring_slot_wraps_at_the_window() -> None:
    pos = np.array([0, 1, 7, 8, 9, 23])
    np.testing.assert_array_equal(ring_slot(pos, 8), [0, 1, 7, 0, 1, 7])


def test_write_rows_fills_each_layer_at_its_slot_and_nothing_else() -> None:
    layers, cap, heads, window, dh = 2, 4, 3, 5, 2
    k = [np.zeros((cap, heads, window, dh)) for _ in range(layers)]
    v = [np.zeros((cap, heads, window, dh)) for _ in range(layers)]
    slots = np.array([2, 0])  # two sequences in cache slots 2 and 0
    pos = np.array([6, 3])  # at steps 6 and 3: ring columns 1 and 3
    new = [np.full((2, heads, dh), 10.0 * (i + 1)) + np.arange(2)[:, None, None]
           for i in range(2 * layers)]  # k_0, v_0, k_1, v_1, distinct per row
    write_rows(k, v, slots, pos, new, window)
    for i in range(layers):
        for arr, src in ((k[i], new[2 * i]), (v[i], new[2 * i + 1])):
            np.testing.assert_array_equal(arr[2, :, 1], src[0])
            np.testing.assert_array_equal(arr[0, :, 3], src[1])
            touched = np.zeros_like(arr, bool)
            touched[2, :, 1] = touched[0, :, 3] = True
            assert not arr[~touched].any()  # nothing else was written
