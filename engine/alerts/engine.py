"""``AlertEngine``: the per-bed ``BlockProcessor`` that runs every physiological detector.

Channels are picked by modality: the first ``spo2`` channel; ``ecg`` and ``ppg`` channels feed
beat detectors (ECG preferred); ``hr`` channels give heart rate; the first ``resp`` channel whose
name looks like airflow (``flow``, ``nasal``, ``pressure``, ``therm``), else the first ``resp``
channel, gives apnea/hypopnea. A channel in ``block.technical`` or with ``valid`` False is unusable:
every detector that depends on it abstains (criterion unknown) and the technical alarm raised by
the quality stage is what shows.

Alarms (``Alert`` transitions): hypoxemia90/88, bradycardia, tachycardia, asystole, AF. Scored
desaturations, apneas, hypopneas and AF episodes are ``{"type": "event", ...}`` (``events``),
emitted when complete. Besides them it returns ``{"type": "apnea_minute", ...}`` when a
minute is scored (``60 (m + 1) + DELAY_S`` s after the clock's 0) and ``{"type": "index", ...}``
with the running ODI-3/ODI-4, AHI and apnea-minute index every ``index_every_s`` seconds.
Operator actions come in through ``acknowledge``; ``tick`` escalates unacknowledged high-priority
alarms (``process`` calls it at each block end).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sleepstream.engine.alerts import apnea_minutes as am
from sleepstream.engine.alerts import heart, respiration, spo2
from sleepstream.engine.alerts.condition import (
    ConditionState,
    acknowledge_condition,
    tick_condition,
)
from sleepstream.engine.alerts.config import DEFAULT, AlertConfig
from sleepstream.engine.alerts.events import scored_all
from sleepstream.engine.alerts.series import per_second, usable
from sleepstream.engine.protocols import Block, ChannelBlock
from sleepstream.engine.types import Alert, StageEstimate

Event = dict[str, Any]
AIRFLOW_HINTS = ("flow", "nasal", "pressure", "therm")


class AlertEngine:
    """Physiological alerts of one bed. ``models``: per-minute classifier models and
    ``validation`` their figures on real data (default: both from the shipped
    ``apnea_minutes.json``); a model without figures that back a claim abstains."""

    def __init__(
        self,
        bed: str,
        config: AlertConfig = DEFAULT,
        *,
        models: dict[str, am.Model] | None = None,
        validation: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.bed = bed
        self.config = config
        self.spo2: spo2.SpO2State | None = None
        self.heart = heart.new_state(bed, config)
        self.resp: respiration.RespState | None = None
        self.minutes = am.new_classifier(models, validation)
        self.next_t: float | None = None
        self.next_index = config.index_every_s
        self.apnea_minutes = 0
        self.scored_minutes = 0

    # ---- the BlockProcessor port -------------------------------------------------------------

    def process(self, block: Block) -> Sequence[Alert | StageEstimate | Event]:
        n = round(block.t_end - block.t_start)
        if n <= 0:
            return []
        t = block.t_start + np.arange(n, dtype=np.float64)
        out: list[Alert | StageEstimate | Event] = []
        by_mod = _by_modality(block.native)
        tech = block.technical
        s = am.clean_spo2(per_second(_first(by_mod, "spo2"), tech, block.t_start, n))
        desat_onsets: list[float] = []
        if "spo2" in by_mod:
            if self.spo2 is None:
                self.spo2 = spo2.new_state(self.bed, self.config, by_mod["spo2"][0].name)
            alarms, desats = spo2.step(self.spo2, t, s, block.t_end)
            desat_onsets = self.spo2.desat_onsets
            out += alarms
            out += scored_all(desats)
        for cb in by_mod.get("ecg", []) + by_mod.get("ppg", []):
            track = self.heart.tracks.setdefault(cb.name, heart.new_track(str(cb.modality)))
            heart.feed_beats(track, cb.fs, cb.t0, cb.data.astype(np.float64),
                             usable(cb, tech), block.t_end)
        hr_cbs = by_mod.get("hr", [])
        h = am.clean_hr(per_second(hr_cbs[0] if hr_cbs else None, tech, block.t_start, n))
        alerts, hr_used = heart.step(self.heart, t, h, tuple(c.name for c in hr_cbs), block.t_end)
        out += alerts
        out += scored_all([a for a in alerts if a.code == "af"])  # an AF episode is also scored
        flow = _airflow(by_mod.get("resp", []))
        if flow is not None:
            if self.resp is None:
                self.resp = respiration.new_state(self.bed, self.config, flow.name)
            amp = respiration.amplitude(self.resp, flow.fs, flow.data.astype(np.float64),
                                        usable(flow, tech), n)
            out += scored_all(respiration.step(self.resp, t, amp, desat_onsets, block.t_end))
        out += self._minutes(block.t_start, s, h if hr_cbs else hr_used, block.t_end)
        out += self.tick(block.t_end)
        if block.t_end >= self.next_index:
            out.append(self.index_event(block.t_end))
            self.next_index = block.t_end + self.config.index_every_s
        return out

    def finish(self, t_end: float) -> Sequence[Alert | StageEstimate | Event]:
        return [self.index_event(t_end)]

    # ---- operator actions and the alarm-system clock -----------------------------------------

    def conditions(self) -> list[ConditionState]:
        """The alarm conditions (scored events are never announced, so never acknowledged)."""
        out = [self.heart.brady, self.heart.tachy, self.heart.asystole, self.heart.af]
        if self.spo2 is not None:
            out += [self.spo2.hyp90.cond, self.spo2.hyp88.cond]
        return out

    def acknowledge(self, alert_id: str | None, t: float) -> list[Alert]:
        """Acknowledge one alarm by id, or every announced alarm of the bed when ``alert_id`` is
        None; returns the resulting transitions (ACKNOWLEDGED, or ENDED for a latched one)."""
        out: list[Alert] = []
        for cond in self.conditions():
            if cond.current is not None and alert_id in (None, cond.current.id):
                out += acknowledge_condition(cond, t)
        return out

    def tick(self, t: float) -> list[Alert]:
        """Escalate high-priority alarms left unacknowledged; call at least once a second."""
        out: list[Alert] = []
        for cond in self.conditions():
            out += tick_condition(cond, t)
        return out

    def note_arousal(self, t: float) -> None:
        """An arousal (from the model or scored) at ``t``: it can confirm a hypopnea."""
        if self.resp is not None:
            respiration.note_arousal(self.resp, t)

    def index_event(self, t: float) -> Event:
        ami = (self.apnea_minutes / (self.scored_minutes / 60.0)
               if self.scored_minutes >= 10 else None)
        return {
            "type": "index", "bed": self.bed, "t": t,
            "odi3": None if self.spo2 is None else spo2.odi(self.spo2, 3),
            "odi4": None if self.spo2 is None else spo2.odi(self.spo2, 4),
            "ahi": None if self.resp is None else respiration.ahi(self.resp),
            "apnea_minutes_per_hour": ami,
        }

    # ---- internals ----------------------------------------------------------------------------

    def _minutes(
        self, t_start: float, s: np.ndarray, h: np.ndarray, t_emit: float
    ) -> list[Event]:
        if self.next_t is not None and t_start > self.next_t:  # a hole: feed unknown seconds
            gap = np.full(round(t_start - self.next_t), np.nan)
            self._score(am.classify_step(self.minutes, gap, gap), t_emit)
        self.next_t = t_start + s.size
        return self._score(am.classify_step(self.minutes, s, h), t_emit)

    def _score(self, results: list[tuple[int, float | None, str]], t_emit: float) -> list[Event]:
        out: list[Event] = []
        thr = self.config.apnea_minutes.threshold
        for minute, prob, key in results:
            figures = self.minutes.validation.get(key)
            backed = figures is not None and bool(figures.get("claims"))
            event: Event = {"type": "apnea_minute", "bed": self.bed, "minute": minute,
                            "start": 60.0 * minute, "prob": None, "apnea": None, "model": key,
                            "validation": _cited(figures), "t": t_emit}
            if prob is not None and not backed:
                event["abstain"] = f"no figure on real data backs the {key} model"
            elif prob is not None:
                event["prob"], event["apnea"] = prob, prob >= thr
                self.scored_minutes += 1
                self.apnea_minutes += int(prob >= thr)
            out.append(event)
        return out


def _cited(figures: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a minute cites of its model's figures: the set and its cross-validated figures, per
    minute and for the night's apnea-minute index (Pearson r and mean absolute error, per hour,
    against the labelled index)."""
    if figures is None:
        return None
    return {k: figures[k] for k in ("set", "records", "cv", "accuracy", "auroc", "ece",
                                    "index_pearson_r", "index_mae_per_h") if k in figures}


def _by_modality(native: Any) -> dict[str, list[ChannelBlock]]:
    out: dict[str, list[ChannelBlock]] = {}
    for cb in native.values():
        if cb.modality is not None:
            out.setdefault(str(cb.modality), []).append(cb)
    return out


def _first(by_mod: dict[str, list[ChannelBlock]], modality: str) -> ChannelBlock | None:
    chans = by_mod.get(modality)
    return chans[0] if chans else None


def _airflow(resp: list[ChannelBlock]) -> ChannelBlock | None:
    for cb in resp:
        if any(k in cb.name.lower() for k in AIRFLOW_HINTS):
            return cb
    return resp[0] if resp else None
