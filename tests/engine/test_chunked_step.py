"""Chunked prefill (``step_chunk.onnx``) equals second-by-second stepping of the shipped model.

Tokens come from a real oximetry night (SpO2 + HR) and from a synthetic PSG night (every
modality), both longer than the KV ring (600 s) so that chunks cross ring wraps, with dropout
runs (presence off) and a stream reset in the middle. Chunks are cut at random lengths, from
one second to more than the graph takes in one call. Outputs agree within ``CHUNK_TOL``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from sleepstream.drivers.edf import read_recording
from sleepstream.engine.inference.backends.onnx import OnnxRingBackend
from sleepstream.engine.inference.chunked import CHUNK_TOL, ChunkedBackend, step_many
from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR, ModelFiles, load_model_files
from sleepstream.engine.inference.staging import StagingProcessor
from sleepstream.engine.inference.tokenizer_runtime import TokenizerRuntime
from sleepstream.engine.protocols import Block, ChannelBlock, StepBatch, StepOutput

REAL_NIGHT = "oximetry-hugcdn/D3.edf"  # 40 min of SpO2 + HR

Tokens = tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]


class Stepwise:
    """A backend seen without its chunk graph: ``step_many`` steps it second by second."""

    def __init__(self, inner: OnnxRingBackend) -> None:
        self.inner, self.files, self.capacity, self.name = inner, inner.files, 1, "stepwise"

    def step(self, batch: StepBatch) -> StepOutput:
        return self.inner.step(batch)

    def reset(self, slots: npt.NDArray[np.int64]) -> None:
        self.inner.reset(slots)


@pytest.fixture(scope="module")
def files() -> ModelFiles:
    return load_model_files(DEFAULT_MODEL_DIR)


def _tokens(files: ModelFiles, signals: dict[str, tuple[np.ndarray, np.ndarray]],
            seconds: int) -> Tokens:
    """Codes (T, M, Q) and presence (T, M) of model-rate signals; absent modalities stay off."""
    tok = TokenizerRuntime(files)
    codes = np.zeros((seconds, len(files.modalities), files.levels), np.int64)
    presence = np.zeros((seconds, len(files.modalities)), bool)
    for i, m in enumerate(files.modalities):
        if m in signals:
            fs = files.tokenizers[m].fs
            data, valid = signals[m]
            codes[:, i], presence[:, i] = tok.encode_window(
                m, data[: seconds * fs].astype(np.float32), valid[: seconds * fs])
    return codes, presence


def _with_dropouts(tokens: Tokens, rng: np.random.Generator) -> Tokens:
    codes, presence = tokens[0], tokens[1].copy()
    for _ in range(6):  # runs of 5..200 s where one modality (or all) drops out
        a = int(rng.integers(0, len(presence) - 200))
        cols = slice(None) if rng.random() < 0.3 else int(rng.integers(presence.shape[1]))
        presence[a : a + int(rng.integers(5, 200)), cols] = False
    return codes, presence


def _real_tokens(files: ModelFiles, data_dir: Path) -> Tokens:
    rec = read_recording(data_dir / REAL_NIGHT)
    sig = {s.spec.modality: (s.data, s.valid) for s in rec.signals if s.spec.modality}
    return _tokens(files, sig, min(2400, int(rec.duration)))


def _synthetic_tokens(files: ModelFiles) -> Tokens:
    from sleepstream.simulators.synthetic.night import simulate_night
    from sleepstream.simulators.synthetic.profiles import get_profile

    night = simulate_night(get_profile("osa-moderate"), 0.5, 4)
    sig: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for ch in night.channels:
        m = _modality(ch.label)
        if m in files.tokenizers and m not in sig:
            step = round(ch.fs / files.tokenizers[m].fs)  # e.g. ECG 200 Hz -> 100 Hz
            data = np.asarray(ch.data, np.float32)[::step]
            sig[m] = (data, np.isfinite(data))
    assert set(sig) == set(files.modalities)
    return _tokens(files, sig, 1800)


def _modality(label: str) -> str:
    for key, m in (("EEG", "eeg"), ("EOG", "eog"), ("EMG", "emg"), ("ECG", "ecg"),
                   ("Pleth", "ppg"), ("Resp", "resp"), ("SpO2", "spo2"), ("HR", "hr"),
                   ("Acc", "acc")):
        if label.startswith(key):
            return m
    return ""


def _run(backend: OnnxRingBackend | Stepwise, tokens: Tokens, cuts: list[int],
         reset_at: int) -> StepOutput:
    codes, presence = tokens
    parts, a = [], 0
    for b in [*cuts, len(codes)]:
        if a == reset_at:
            backend.reset(np.array([0]))
        parts.append(step_many(backend, 0, codes[a:b], presence[a:b]))
        a = b
    return StepOutput(*(np.concatenate([getattr(p, k) for p in parts])
                        for k in ("embeddings", "stage_logits", "surprise")))


@pytest.mark.parametrize("night", ["real", "synthetic"])
def test_chunked_equals_stepwise_across_wraps_dropouts_and_a_reset(
    files: ModelFiles, night: str, request: pytest.FixtureRequest
) -> None:
    rng = np.random.default_rng(11)
    if night == "real":
        tokens = _real_tokens(files, request.getfixturevalue("data_dir"))
    else:
        tokens = _synthetic_tokens(files)
    tokens = _with_dropouts(tokens, rng)
    n = len(tokens[0])
    chunked = OnnxRingBackend(files, 1)
    assert isinstance(chunked, ChunkedBackend) and chunked.max_chunk == files.window - 1
    cuts = sorted({int(c) for c in rng.integers(1, n, 8)} | {n - 700})  # one chunk > max_chunk
    reset_at = cuts[len(cuts) // 2]
    got = _run(chunked, tokens, cuts, reset_at)
    inner = OnnxRingBackend(files, 1)
    ref = _run(Stepwise(inner), tokens, cuts, reset_at)
    assert got.stage_logits.shape == (n, 5) and got.embeddings.shape == (n, files.d_model)
    for k in ("embeddings", "stage_logits", "surprise"):
        np.testing.assert_allclose(getattr(got, k), getattr(ref, k), rtol=0, atol=CHUNK_TOL)
    assert chunked.pos[0] == inner.pos[0] == n - reset_at
    for i in range(files.n_layer):  # the rings and the carried embedding end the same
        np.testing.assert_allclose(chunked.k[i], inner.k[i], rtol=0, atol=CHUNK_TOL)
        np.testing.assert_allclose(chunked.v[i], inner.v[i], rtol=0, atol=CHUNK_TOL)
    np.testing.assert_allclose(chunked.prev_h, inner.prev_h, rtol=0, atol=CHUNK_TOL)


def test_step_chunk_refuses_lengths_it_cannot_take(files: ModelFiles) -> None:
    from sleepstream.engine.errors import ModelError

    b = OnnxRingBackend(files, 1)
    codes = np.zeros((files.window, len(files.modalities), files.levels), np.int64)
    with pytest.raises(ModelError):
        b.step_chunk(0, codes, np.ones(codes.shape[:2], bool))
    assert b.pos[0] == 0


def _blocks(files: ModelFiles, tokens_night: dict[str, tuple[np.ndarray, np.ndarray]],
            seconds: int, block_s: int) -> list[Block]:
    blocks = []
    for a in range(0, seconds, block_s):
        model = {
            m: ChannelBlock(m, m, float(files.tokenizers[m].fs), float(a),
                            d[a * files.tokenizers[m].fs : (a + block_s) * files.tokenizers[m].fs],
                            v[a * files.tokenizers[m].fs : (a + block_s) * files.tokenizers[m].fs])
            for m, (d, v) in tokens_night.items()
        }
        blocks.append(Block("bed1", float(a), float(a + block_s), {}, model, frozenset()))
    return blocks


class Recorder:
    """Keeps the stage logits a backend hands to the staging processor."""

    def __init__(self, inner: OnnxRingBackend | Stepwise) -> None:
        self.inner, self.files, self.capacity, self.name = inner, inner.files, 1, "recorder"
        self.logits: list[np.ndarray] = []

    def step(self, batch: StepBatch) -> StepOutput:
        out = self.inner.step(batch)
        self.logits.append(out.stage_logits)
        return out

    def reset(self, slots: npt.NDArray[np.int64]) -> None:
        self.inner.reset(slots)


class ChunkRecorder(Recorder):
    @property
    def max_chunk(self) -> int:
        assert isinstance(self.inner, OnnxRingBackend)
        return self.inner.max_chunk

    def step_chunk(self, slot: int, codes: np.ndarray, presence: np.ndarray) -> StepOutput:
        assert isinstance(self.inner, OnnxRingBackend)
        out = self.inner.step_chunk(slot, codes, presence)
        self.logits.append(out.stage_logits)
        return out


def test_replay_staging_chunked_equals_stepwise_on_a_real_night(
    files: ModelFiles, data_dir: Path
) -> None:
    """The staging processor's replay path on 30-s blocks of a real night (SpO2 + HR, with a
    probe-off run across a ring wrap): the chunked backend hands it the stage logits of
    second-by-second stepping, and the stage events are the same."""
    rec = read_recording(data_dir / REAL_NIGHT)
    sig = {s.spec.modality: (s.data, s.valid.copy()) for s in rec.signals if s.spec.modality}
    sig["spo2"][1][900:1200] = False
    blocks = _blocks(files, sig, 1800, 30)
    chunked = ChunkRecorder(OnnxRingBackend(files, 1))
    stepwise = Recorder(Stepwise(OnnxRingBackend(files, 1)))
    assert isinstance(chunked, ChunkedBackend) and not isinstance(stepwise, ChunkedBackend)
    runs = []
    for backend in (chunked, stepwise):
        proc = StagingProcessor("bed1", files=files, backend=backend)  # type: ignore[arg-type]
        runs.append([e for b in blocks for e in proc.process(b)])
        assert proc.steps_total == 1800
    assert len(chunked.logits) == 60 and len(stepwise.logits) == 1800  # one call per block
    np.testing.assert_allclose(np.concatenate(chunked.logits), np.concatenate(stepwise.logits),
                               rtol=0, atol=CHUNK_TOL)
    assert len(runs[0]) == len(runs[1]) == 60
    for a, b in zip(*runs, strict=True):
        assert (a.stage, a.modalities, a.missing, a.classes) == (
            b.stage, b.modalities, b.missing, b.classes)
        assert abs(a.confidence - b.confidence) <= CHUNK_TOL
        assert a.probs.keys() == b.probs.keys()
        assert all(abs(a.probs[s] - b.probs[s]) <= CHUNK_TOL for s in a.probs)
    assert {e.missing for e in runs[0][30:40]} == {("spo2",)}


def test_replay_blocks_stage_as_live_one_second_blocks(files: ModelFiles, data_dir: Path) -> None:
    """30-s replay blocks give the token path the samples 1-s live blocks give it: the
    per-modality buffer grows to hold a whole block (it was 16 s deep, and seconds 0-13 of
    every 30-s block were tokenized from seconds 16-29), and the logits agree within
    ``CHUNK_TOL`` second by second."""
    rec = read_recording(data_dir / REAL_NIGHT)
    sig = {s.spec.modality: (s.data, s.valid.copy()) for s in rec.signals if s.spec.modality}
    sig["hr"][1][400:460] = False  # a dropout inside one block
    logits = []
    for block_s in (30, 1):
        backend = ChunkRecorder(OnnxRingBackend(files, 1))
        proc = StagingProcessor("bed1", files=files, backend=backend)  # type: ignore[arg-type]
        for b in _blocks(files, sig, 900, block_s):
            proc.process(b)
        assert proc.steps_total == 900
        logits.append(np.concatenate(backend.logits))
    np.testing.assert_allclose(logits[0], logits[1], rtol=0, atol=CHUNK_TOL)
