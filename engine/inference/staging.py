"""Live sleep staging for one bed: model-rate seconds -> tokens -> streaming step -> stages.

``StagingProcessor`` is a ``BlockProcessor``. It collects each modality's model-rate samples
into whole seconds (a small preallocated ring per modality), tokenizes every completed second,
runs the streaming step of the temporal transformer with this bed's KV-cache slot, and when a
30-s epoch ends emits a ``StageEstimate``: the stage head's logits averaged over the epoch's
seconds, the modalities that were present, and those missing. Missing modalities enter the
model as "absent" tokens; the confidence is the top probability times the share of the bed's
usual modalities that were present, so dropouts lower it and are named.

Replay (and tests) step each bed's own backend synchronously inside ``process``: deterministic,
no waiting, as fast as the file reads. Live engines share one backend and one ``StepScheduler``
among all beds (``SharedStaging``): ``process`` submits the bed's due steps without blocking, the
scheduler runs the due steps of every bed in one call per tick on its inference thread, and the
stage event of an epoch goes back to its bed (``bind``: the engine's delivery into the bed's
task) when the epoch's last step is back.
A bed whose source stalls submits nothing and is not waited for.

"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sleepstream.engine.errors import ModelError
from sleepstream.engine.inference.backends import make_backend
from sleepstream.engine.inference.backends.onnx import OnnxStepBackend
from sleepstream.engine.inference.chunked import step_many
from sleepstream.engine.inference.model_files import (
    DEFAULT_MODEL_DIR,
    SERVING_MANIFEST,
    ModelFiles,
    ModelFilesError,
    load_model_files,
    session,
)
from sleepstream.engine.inference.scheduler import StepResult, StepScheduler
from sleepstream.engine.inference.second_ring import SecondRing
from sleepstream.engine.inference.spectral_model import (
    CLASS_SETS,
    COLLAPSE,
    SpectralModel,
    load_spectral_model,
)
from sleepstream.engine.inference.spectral_staging import (
    SpectralStagingState,
    epoch_probs,
    new_spectral_state,
)
from sleepstream.engine.inference.spectral_staging import write as write_eeg
from sleepstream.engine.inference.tokenizer_runtime import (
    TokenizerRuntime,
    TokenizerState,
    new_state,
    push_seconds,
)
from sleepstream.engine.inference.tokenizer_runtime import reset as reset_tokenizer
from sleepstream.engine.protocols import Block, Event, InferenceBackend
from sleepstream.engine.types import STAGES, Alert, F32Array, StageEstimate

log = logging.getLogger(__name__)

RESET_GAP_S = 120  # a jump in time longer than this restarts the bed's stream state


class StagingProcessor:
    """One bed's live staging (see module docstring)."""

    def __init__(
        self,
        bed: str,
        *,
        model_dir: str | Path = DEFAULT_MODEL_DIR,
        files: ModelFiles | None = None,
        backend: InferenceBackend | None = None,
        slot: int = 0,
        tokenizers: TokenizerRuntime | None = None,
        shared: SharedStaging | None = None,
        spectral: SpectralModel | None = None,
    ) -> None:
        self.bed = bed
        self.shared = shared  # live: steps go through the shared scheduler
        self._deliver: Callable[[Event], None] = _undelivered  # live: bound by the engine
        self._gen = 0  # stream generation: results of a stream that was restarted are ignored
        self.steps_failed = 0
        self.files = files or getattr(backend, "files", None) or load_model_files(model_dir)
        self.backend: InferenceBackend = backend or OnnxStepBackend(self.files)
        self.tokenizers = tokenizers or TokenizerRuntime(self.files)
        self.slot = np.array([slot], np.int64)
        mods = self.files.modalities
        self.epoch_s = self.files.epoch_s
        self._rings = {m: SecondRing(self.files.tokenizers[m].fs) for m in mods}
        self._tok: dict[str, TokenizerState] = {
            m: new_state(self.files.tokenizers[m]) for m in mods
        }
        self._next: int | None = None  # next second to step
        self._seen = np.zeros(len(mods), bool)  # modalities this bed has delivered
        self._logit_sum = np.zeros(len(STAGES), np.float64)
        self._presence_sum = np.zeros(len(mods), np.float64)
        self._steps = 0
        self.steps_total = 0
        self.spectral = spectral if spectral is not None else _spectral_of(self.files.root)
        self._eeg: SpectralStagingState | None = (
            new_spectral_state(self.spectral) if self.spectral is not None else None
        )

    def bind(self, deliver: Callable[[Event], None]) -> None:
        """Live: stage events computed by the shared scheduler go to ``deliver`` (the bed)."""
        self._deliver = deliver

    def _restart(self, second: int) -> None:
        self._gen += 1
        if self.shared is not None:
            self.shared.scheduler.reset(self.bed)
        else:
            self.backend.reset(self.slot)
        for st in self._tok.values():
            reset_tokenizer(st)
        self._next = second
        self._clear_epoch()

    def _clear_epoch(self) -> None:
        self._logit_sum[:] = 0
        self._presence_sum[:] = 0
        self._steps = 0

    def process(self, block: Block) -> Sequence[Alert | StageEstimate | Event]:
        ready = math.floor(block.t_end)
        firsts: dict[str, bool] = {}
        if self._eeg is not None:  # the EEG spectral path reads every EEG channel, native rate
            for ch in block.native.values():
                if ch.modality == "eeg":
                    write_eeg(self._eeg, ch)
        for ch in block.model.values():
            m = ch.modality
            if m is None or m not in self._rings or firsts.get(m):
                continue
            firsts[m] = True  # the first channel of a modality feeds it (as in training)
            self._rings[m].write(ch.t0, ch.data, ch.valid)
        if firsts:  # wait for the slowest modality, but never more than 2 s behind the block
            done = min(self._rings[m].end // self._rings[m].fs for m in firsts)
            ready = max(min(ready, done), ready - 2)
        start = math.floor(block.t_start)
        if self._next is None or start - self._next > RESET_GAP_S or ready < self._next - 1:
            self._restart(start)  # a new stream, a long break, or time going back
        return self._advance(ready)

    def finish(self, t_end: float) -> Sequence[Alert | StageEstimate | Event]:
        out = self._advance(math.floor(t_end)) if self._next is not None else []
        if self.shared is not None:  # the bed ends: steps still queued are dropped
            self.shared.scheduler.leave(self.bed)
        return out

    def _advance(self, ready: int) -> list[Alert | StageEstimate | Event]:
        assert self._next is not None
        n = ready - self._next
        if n <= 0:
            return []
        mods = self.files.modalities
        codes = np.zeros((n, len(mods), self.files.levels), np.int64)
        presence = np.zeros((n, len(mods)), bool)
        for i, m in enumerate(mods):
            spec = self.files.tokenizers[m]
            d, v = self._rings[m].take(self._next, n)
            frames, present = push_seconds(spec, self._tok[m], d, v)
            codes[:, i] = self.tokenizers.encode(m, frames)
            presence[:, i] = present
        first = self._next
        if self.shared is not None:
            for j in range(n):
                self.shared.scheduler.submit(
                    self.bed, codes[j], presence[j], self._on_result(first + j, presence[j]),
                    t=float(first + j),
                )
            self._next = ready
            return []
        res = step_many(self.backend, int(self.slot[0]), codes, presence)
        self._next = ready
        return self._fold_many(first, presence, res.stage_logits)

    def _fold_many(
        self, first: int, presence: npt.NDArray[np.bool_], logits: F32Array
    ) -> list[Alert | StageEstimate | Event]:
        """``_fold`` over the consecutive seconds from ``first``, an epoch's run at a time."""
        out: list[Alert | StageEstimate | Event] = []
        lo, n = 0, len(presence)
        while lo < n:
            to_end = self.epoch_s - (first + lo) % self.epoch_s  # seconds left in the epoch
            hi = min(n, lo + to_end)
            self._add(presence[lo:hi], logits[lo:hi])
            if hi - lo == to_end:
                out.append(self._estimate(first + hi - self.epoch_s))
                self._clear_epoch()
            lo = hi
        return out

    def _add(self, presence: npt.NDArray[np.bool_], logits: F32Array) -> None:
        """Add k steps' presence (k, M) and stage logits (k, 5) to the open epoch."""
        k = len(presence)
        self.steps_total += k
        self._seen |= presence.any(axis=0)
        self._logit_sum += logits.sum(axis=0, dtype=np.float64)
        self._presence_sum += presence.sum(axis=0)
        self._steps += k

    def _fold(
        self, second: int, presence: npt.NDArray[np.bool_], logits: F32Array | None
    ) -> StageEstimate | None:
        """Add one step's outputs (None: the step failed) to the epoch; its estimate at the end."""
        if logits is not None:
            self._add(presence[None], logits[None])
        if (second + 1) % self.epoch_s:
            return None
        est = self._estimate(second + 1 - self.epoch_s)
        self._clear_epoch()
        return est

    def _on_result(
        self, second: int, presence: npt.NDArray[np.bool_]
    ) -> Callable[[StepResult | BaseException], None]:
        gen = self._gen

        def done(res: StepResult | BaseException) -> None:
            if gen != self._gen or self.shared is None:
                return  # a restarted stream
            if isinstance(res, BaseException):
                self.steps_failed += 1
            est = self._fold(second, presence, None if isinstance(res, BaseException)
                             else res.stage_logits)
            if est is not None:
                self._deliver(est.to_event())

        return done

    def _estimate(self, epoch_start: int) -> StageEstimate:
        mods = self.files.modalities
        logits = self._logit_sum / max(self._steps, 1)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        share = self._presence_sum / max(self._steps, 1)
        used = tuple(m for i, m in enumerate(mods) if share[i] >= 0.5)
        missing = tuple(m for i, m in enumerate(mods) if self._seen[i] and share[i] < 0.5)
        expected = self._seen.sum()
        coverage = float(share[self._seen].mean()) if expected else 0.0
        coverage *= self._steps / self.epoch_s
        best = int(p.argmax())
        if self._eeg is not None:
            return self._claim(epoch_start, p, used, missing, coverage)
        if not used:  # no modality carried the epoch: abstain, with no probabilities
            return StageEstimate(self.bed, float(epoch_start), float(self.epoch_s), None, {},
                                 0.0, used, missing)
        return StageEstimate(
            bed=self.bed,
            epoch_start=float(epoch_start),
            epoch_s=float(self.epoch_s),
            stage=STAGES[best],
            probs={s: float(x) for s, x in zip(STAGES, p, strict=True)},
            confidence=float(p[best]) * coverage,
            modalities=used,
            missing=missing,
        )


    def _claim(
        self, epoch_start: int, p: np.ndarray, used: tuple[str, ...], missing: tuple[str, ...],
        coverage: float,
    ) -> StageEstimate:
        """A model with a validity table: the EEG spectral path where the bed has valid EEG,
        else the token path; either claims only the class set its table shows on real data."""
        assert self._eeg is not None and self.spectral is not None
        eeg_p, _channels, subset = epoch_probs(self._eeg, float(epoch_start))
        if eeg_p is not None:
            p, used, coverage = eeg_p, ("eeg", *(m for m in used if m != "eeg")), 1.0
            missing = tuple(m for m in missing if m != "eeg")
        else:
            subset = "tokens"
        kind = self.spectral.classes_for(subset) if used else "none"
        probs = {s: float(x) for s, x in zip(STAGES, p, strict=True)}
        if kind == "none":  # nothing shown on real data for this subset: abstain, no probabilities
            return StageEstimate(self.bed, float(epoch_start), float(self.epoch_s), None, {},
                                 0.0, used, missing, classes=())
        q = np.zeros(len(CLASS_SETS[kind]))
        np.add.at(q, np.asarray(COLLAPSE[kind]), p)
        best = int(q.argmax())
        return StageEstimate(
            bed=self.bed, epoch_start=float(epoch_start), epoch_s=float(self.epoch_s),
            stage=CLASS_SETS[kind][best], probs=probs, confidence=float(q[best]) * coverage,
            modalities=used, missing=missing, classes=CLASS_SETS[kind],
        )


def _spectral_of(root: Path) -> SpectralModel | None:
    """The model directory's EEG spectral model, or None where it has none (``sleepstream-v1``)."""
    try:
        return load_spectral_model(root)
    except ModelFilesError as exc:
        if (root / "spectral.json").is_file():
            log.warning("EEG spectral path off: %s", exc)
        return None


class SharedStaging:
    """Live: one backend and one ``StepScheduler`` shared by every bed's ``StagingProcessor``.
    An async context manager (the engine enters it for its lifetime)."""

    def __init__(self, backend: InferenceBackend, *, max_wait_s: float = 0.1) -> None:
        self.backend = backend
        self.scheduler = StepScheduler(backend, max_wait_s=max_wait_s)

    async def __aenter__(self) -> SharedStaging:
        await self.scheduler.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.scheduler.__aexit__(None, None, None)


def _undelivered(event: Event) -> None:
    log.warning("stage event dropped: the staging of its bed is not bound to an engine")


def processor_factory(
    checkpoint: str, backend: str
) -> tuple[Callable[[str], StagingProcessor] | None, str]:
    """For the composition root: a ``bed id -> StagingProcessor`` factory sharing one set of
    onnxruntime sessions, or None and the reason. ``checkpoint`` is "default" (the shipped
    model), a model directory, or a file inside one."""
    root = Path(checkpoint) if checkpoint != "default" else DEFAULT_MODEL_DIR
    if root.is_file():
        root = root.parent
    try:
        files = load_model_files(root)
    except ModelFilesError as exc:
        return None, f"running without sleep stages: {exc}"
    tokenizers = TokenizerRuntime(files)
    spectral = _spectral_of(root)
    step_session = session(files.step_file)
    runtime, note = "onnxruntime", ""
    if backend != "onnx":
        try:
            make_backend(backend, files, 1)  # fail here, once, if the runtime is missing
            runtime = backend
        except ModelError as exc:
            note = f" ({backend} unavailable: {exc}; using onnxruntime)"

    serving = (root / SERVING_MANIFEST).is_file()

    def factory(bed: str) -> StagingProcessor:
        if runtime != "onnxruntime" or serving:  # the serving graph writes the ring in place
            kind = "onnx" if runtime == "onnxruntime" else runtime
            return StagingProcessor(
                bed, files=files, backend=make_backend(kind, files, 1), tokenizers=tokenizers,
                spectral=spectral,
            )
        step = OnnxStepBackend(files, capacity=1, step_session=step_session)
        return StagingProcessor(bed, files=files, backend=step, tokenizers=tokenizers,
                                spectral=spectral)

    sha = files.manifest.get("checkpoint_sha256", "")[:12]
    eeg = "; EEG spectral path on" if spectral is not None else ""
    return factory, f"staging with {root.name} (sha256 {sha}) on {runtime}{note}{eeg}"


def live_processor_factory(
    checkpoint: str, backend: str, beds: int, *, max_wait_s: float = 0.1
) -> tuple[Callable[[str], StagingProcessor] | None, str, SharedStaging | None]:
    """Live engines: like ``processor_factory``, but every bed's processor steps through one
    ``SharedStaging`` (one backend with a KV slot per bed and room for ``beds`` beds, one
    scheduler), returned third for the composition root to run and to attach to the event bus."""
    factory, text = processor_factory(checkpoint, backend)
    if factory is None:
        return None, text, None
    probe = factory("probe")
    files, spectral = probe.files, probe.spectral
    runtime = backend
    try:
        spare = 2 * max(1, round(1.0 / max_wait_s))  # room for uneven phase buckets
        step = make_backend(backend, files, beds + spare)
    except ModelError as exc:
        runtime = "onnx"
        log.warning("%s unavailable (%s); using onnxruntime", backend, exc)
        step = make_backend("onnx", files, beds + spare)
    shared = SharedStaging(step, max_wait_s=max_wait_s)
    tokenizers = TokenizerRuntime(files)

    def live(bed: str) -> StagingProcessor:
        return StagingProcessor(bed, files=files, backend=step, tokenizers=tokenizers,
                                shared=shared, spectral=spectral)

    return live, f"{text}; live: one {runtime} backend and scheduler shared by all beds", shared
