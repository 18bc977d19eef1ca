"""``sleepstream evaluate alerts``: the alert engine against expert-scored real nights.

``--data`` is a folder of labelled recordings (``*.edf`` with ``*.minutes.csv`` or
``*.epochs.csv``) or a folder holding several such folders. Per set:

- minute-labelled sets (SpO2 + HR, or HR alone): the per-minute apnea classifier under
  record-wise 5-fold cross-validation (records, never minutes, are split; the model, gradient-
  boosted trees or with ``--model logistic`` the earlier logistic regression, is refitted on the
  training records of each fold; features as the live engine computes them, causally, each
  minute scored ``DELAY_S`` after it ends) -> sensitivity, specificity, accuracy, AUROC; the
  per-night apnea-minute index (predicted vs labelled apnea minutes per hour, Pearson r) and,
  with SpO2, the ODI-3 of the streaming desaturation detector against the labelled index
  (Pearson r) and the plain ODI-3 per-minute rule as a baseline;
- epoch-labelled sets with respiratory events (slpdb: per 30-s epoch, HR only; sets whose epoch
  labels carry no ``events`` column, such as stage-only sets, are skipped): the shipped HR model
  (never trained on this set) -> per-epoch figures and the per-record correlation with the scored
  event rate;
- ``--latency N``: N nights replayed second by second through ``AlertEngine``; latency = emission
  time on the engine clock minus the time the criterion (threshold held for the condition delay)
  is met in the data, found by an independent whole-night computation -> p50/p99 seconds.

``--per-record`` adds, per minute-labelled set, each record's figures and those pooled over
records named alike (the HuGCDN set's C, D and ND nights), to the text and the JSON line.
``--fit`` refits the shipped models on all records of each set and writes ``apnea_minutes.json``
with each model's cross-validated figures (``validation``: the set, CV accuracy, AUROC, ECE,
the majority-class accuracy and the slpdb check of the HR model), which its minutes cite.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.drivers.edf import read_recording
from sleepstream.engine.alerts import apnea_minutes as am
from sleepstream.engine.alerts.config import RuleConfig
from sleepstream.engine.alerts.engine import AlertEngine
from sleepstream.engine.errors import RecordingError
from sleepstream.engine.report import print_figures
from sleepstream.engine.types import Alert, AlertState, FloatArray
from sleepstream.models import alert_replay as replay
from sleepstream.models.spectral_train import ece

log = logging.getLogger(__name__)
FOLDS = 5
SEED = 0
EVENT_CODES = {"H", "HA", "OA", "X", "CA", "CAA"}
GOALS = {"oximetry": {"auroc": 0.95, "accuracy": 0.90}, "hr": {"accuracy": 0.88}}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="folder of labelled recordings")
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    p.add_argument("--fit", action="store_true", help="refit and write the shipped models")
    p.add_argument("--model", choices=("boosted", "logistic"), default="boosted",
                   help="model kind to cross-validate and fit (default boosted)")
    p.add_argument("--latency", type=int, default=2, metavar="N",
                   help="nights to replay for alert latency (0: skip; default 2)")
    p.add_argument("--per-record", action="store_true",
                   help="also each record's figures and those of records named alike")


def _labelled(folder: Path) -> bool:
    """Minute labels, or epoch labels that score respiratory events (an ``events`` column)."""
    if list(folder.glob("*.minutes.csv")):
        return True
    epochs = sorted(folder.glob("*.epochs.csv"))
    return bool(epochs) and "events" in epochs[0].open().readline().strip().split(",")


def _sets(root: Path) -> list[Path]:
    if _labelled(root):
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and _labelled(p))
    if not found:
        raise RecordingError(f"{root}: no *.minutes.csv or respiratory *.epochs.csv labels; "
                             "pass a data folder")
    return found


def fit_model(x: FloatArray, y: np.ndarray, names: tuple[str, ...], kind: str) -> am.Model:
    """One apnea-minute model on training minutes: boosted trees (scikit-learn, exported to
    arrays) or logistic regression."""
    if kind == "logistic":
        return am.fit_logistic(x, y, names)
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40,
        l2_regularization=1.0, early_stopping=False, random_state=SEED).fit(x, y)
    return am.BoostedTrees.from_sklearn(clf, names)


def _series(path: Path) -> tuple[FloatArray | None, FloatArray]:
    """Per-second SpO2 (None when absent) and HR of a recording, NaN where invalid."""
    rec = read_recording(path)
    sig = {s.spec.modality: s for s in rec.signals}
    h = sig["hr"]
    per = round(h.spec.fs)
    n = h.data.size // per
    hr = am.clean_hr(h.data[: n * per], h.valid[: n * per])
    rows = hr.reshape(n, per)  # (seconds, samples per second)
    cnt = (~np.isnan(rows)).sum(axis=1)
    hr_s = np.where(cnt > 0, np.nansum(rows, axis=1) / np.maximum(cnt, 1), np.nan)
    s = sig.get("spo2")
    spo2 = None if s is None else am.clean_spo2(s.data, s.valid)
    return spo2, hr_s


def _features(spo2: FloatArray | None, hr: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """(n, F) features with context and the usable mask for minutes 0..n-1."""
    hw = am.minute_windows(hr, n, am.DELAY_S)
    sw = None if spo2 is None else am.minute_windows(spo2, n, am.DELAY_S)
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            x = am.with_context(am.minute_features(sw, hw))
    ok = am.window_ok(hw) | (am.window_ok(sw) if sw is not None else False)
    return x, np.asarray(ok)


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, p))


def binary(y: np.ndarray, pred: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {
        "sensitivity": float(pred[y].mean()) if y.any() else float("nan"),
        "specificity": float((~pred[~y]).mean()) if (~y).any() else float("nan"),
        "accuracy": float((pred == y).mean()),
        "auroc": auroc(y, score),
    }


def _pearson(a: list[float], b: list[float]) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 else float("nan")


def _odi3_minutes(spo2: FloatArray, n: int) -> tuple[FloatArray, float]:
    """Desaturation (>= 3 %) onsets near each minute from the streaming detector run on the whole
    night in one chunk, and the night's ODI-3."""
    from sleepstream.engine.alerts import spo2 as sp
    from sleepstream.engine.alerts.config import DEFAULT

    st = sp.new_state("eval", DEFAULT)
    t = np.arange(spo2.size, dtype=np.float64)
    _, desats = sp.step(st, t, spo2, float(spo2.size))
    onsets = [a.onset for a in desats if a.code == "desat3" and a.end is None]
    # a desaturation counts for the minutes whose span, widened by 30 s each side, holds its
    # onset (desaturations lag the airway event by up to ~30 s)
    on = np.asarray(onsets, dtype=np.float64)
    lo = np.searchsorted(on, 60.0 * np.arange(n) - 30.0)
    hi = np.searchsorted(on, 60.0 * np.arange(n) + 90.0)
    return (hi - lo).astype(np.float64), sp.odi(st, 3) or 0.0


def _minute_labels(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)[:, 1].astype(bool)


def per_record(names: list[str], ys: list[np.ndarray], probs: list[np.ndarray]
               ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per record: minutes, labelled and predicted apnea share, accuracy, AUROC (NaN for a night
    with one class only); and the same pooled over the records whose names start with the same
    letters (the HuGCDN set's C controls, D and ND patients)."""
    rows = [{"record": n, "minutes": int(y.size), "labelled": float(y.mean()),
             "predicted": float((p >= 0.5).mean()), "accuracy": float(((p >= 0.5) == y).mean()),
             "auroc": auroc(y, p)} for n, y, p in zip(names, ys, probs, strict=True)]
    prefixes = [re.sub(r"[^A-Za-z].*", "", n) for n in names]  # "ND11" -> "ND"
    groups: dict[str, dict[str, Any]] = {}
    for prefix in sorted(set(prefixes)):
        idx = [i for i, q in enumerate(prefixes) if q == prefix]
        y = np.concatenate([ys[i] for i in idx])
        p = np.concatenate([probs[i] for i in idx])
        groups[prefix or "-"] = {"records": len(idx), "minutes": int(y.size),
                                 **binary(y, p >= 0.5, p)}
    return rows, groups


def evaluate_minutes(folder: Path, kind: str = "boosted", *, detail: bool = False
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Record-wise CV on a minute-labelled set; returns (figures, fitted model JSON); with
    ``detail`` the figures also hold ``per_record`` and ``groups`` (``per_record``)."""
    recs = sorted(folder.glob("*.minutes.csv"))
    xs, ys, oks, odis, odi_min = [], [], [], [], []
    nights = [(_series(p.with_name(p.name.replace(".minutes.csv", ".edf"))), _minute_labels(p))
              for p in recs]
    with_spo2 = all(spo2 is not None for (spo2, _), _ in nights)
    for (spo2, hr), labels in nights:  # a set with SpO2 in only some records: HR alone
        x, ok = _features(spo2 if with_spo2 else None, hr, labels.size)
        xs.append(x)
        ys.append(labels)
        oks.append(ok)
        if spo2 is not None:
            per_min, night = _odi3_minutes(spo2, labels.size)
            odi_min.append(per_min)
            odis.append(night)
    key = "spo2_hr" if with_spo2 else "hr"
    names = am.feature_names(with_spo2)
    rng = np.random.default_rng(SEED)
    fold_of = np.empty(len(recs), dtype=np.int64)
    fold_of[rng.permutation(len(recs))] = np.arange(len(recs)) % FOLDS
    probs: list[np.ndarray] = [np.zeros(0)] * len(recs)
    for k in range(FOLDS):
        train = [i for i in range(len(recs)) if fold_of[i] != k]
        model = fit_model(np.concatenate([xs[i] for i in train]),
                          np.concatenate([ys[i] for i in train]), names, kind)
        for i in np.flatnonzero(fold_of == k).tolist():
            probs[i] = np.where(oks[i], model.predict(xs[i]), 0.0)
    y, p = np.concatenate(ys), np.concatenate(probs)
    fig: dict[str, Any] = {"records": len(recs), "minutes": int(y.size), "model": key,
                           "kind": kind, "cv": f"record-wise {FOLDS}-fold",
                           "delay_s": am.DELAY_S}
    fig.update(binary(y, p >= 0.5, p))
    fig["majority_accuracy"] = float(max(y.mean(), 1.0 - y.mean()))  # always the larger class
    usable = np.concatenate(oks)
    fig["ece"] = ece(np.stack([1.0 - p[usable], p[usable]], axis=1), y[usable].astype(np.int64))
    fig["abstained_minutes"] = int(np.logical_not(usable).sum())
    rows, groups = per_record([p.name.removesuffix(".minutes.csv") for p in recs], ys, probs)
    fig["auroc_record_median"] = float(np.nanmedian([r["auroc"] for r in rows]))
    fig["accuracy_record_mean"] = float(np.mean([r["accuracy"] for r in rows]))
    lab_idx = [60.0 * r["labelled"] for r in rows]  # apnea minutes per hour, per night
    est_idx = [60.0 * r["predicted"] for r in rows]
    fig["index_pearson_r"] = _pearson(est_idx, lab_idx)
    fig["index_mae_per_h"] = float(np.mean(np.abs(np.subtract(est_idx, lab_idx))))
    if odis:
        fig["odi3_pearson_r"] = _pearson(odis, lab_idx)
        score = np.concatenate(odi_min)
        fig["odi3_rule"] = binary(y, score > 0, score)
    if detail:
        fig["per_record"], fig["groups"] = rows, groups
    final = fit_model(np.concatenate(xs), np.concatenate(ys), names, kind)
    return fig, {key: final.to_json()}


def _epoch_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    onsets, events = [], []
    with path.open() as f:
        for row in csv.DictReader(f):
            onsets.append(float(row["onset_s"]))
            codes = set((row.get("events") or "").split())
            events.append(bool(codes & EVENT_CODES))
    return np.asarray(onsets), np.asarray(events, dtype=bool)


def evaluate_epochs(folder: Path, model: am.Model) -> dict[str, Any]:
    """Per-epoch respiratory-event detection from HR with the shipped HR model."""
    ys, ps, rates, est = [], [], [], []
    for lab_path in sorted(folder.glob("*.epochs.csv")):
        onsets, events = _epoch_labels(lab_path)
        _, hr = _series(lab_path.with_name(lab_path.name.replace(".epochs.csv", ".edf")))
        n_min = int(np.ceil(hr.size / 60))
        x, ok = _features(None, hr, n_min)
        prob = np.where(ok, model.predict(x), 0.0)
        m = np.minimum((onsets // 60).astype(np.int64), n_min - 1)
        ys.append(events)
        ps.append(prob[m])
        hours = onsets.size * 30 / 3600
        rates.append(events.sum() / hours)
        est.append(60.0 * float((prob >= model.threshold).mean()))
    y, p = np.concatenate(ys), np.concatenate(ps)
    fig: dict[str, Any] = {"records": len(ys), "epochs": int(y.size),
                           "model": "hr (fitted on the minute-labelled sets, never on this one)"}
    fig.update(binary(y, p >= model.threshold, p))
    fig["event_rate_pearson_r"] = _pearson(est, rates)
    return fig


def reference_times(spo2: FloatArray, t_stop: float) -> dict[str, list[float]]:
    """Independent whole-night criterion times: the first second at which each criterion has
    held for its delay (default rules), from run lengths over the full arrays."""
    from sleepstream.engine.alerts.config import DEFAULT
    from sleepstream.engine.alerts.spo2 import baseline

    w = int(DEFAULT.baseline_s)
    base = baseline(np.full(w, np.nan), spo2)
    crits = {
        "desat3": (base - spo2 >= DEFAULT.desat3.threshold, DEFAULT.desat3.delay_s),
        "desat4": (base - spo2 >= DEFAULT.desat4.threshold, DEFAULT.desat4.delay_s),
    }
    out: dict[str, list[float]] = {
        "hypoxemia90": integrated_times(spo2, DEFAULT.hypoxemia90, t_stop),
        "hypoxemia88": integrated_times(spo2, DEFAULT.hypoxemia88, t_stop),
    }
    for code, (met, delay) in crits.items():
        m = np.concatenate([[False], np.nan_to_num(met).astype(bool), [False]])
        d = np.diff(m.astype(np.int8))
        starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        long = (stops - starts) >= delay
        out[code] = [float(s + delay) for s in starts[long] if s + delay <= t_stop]
    return out


def integrated_times(spo2: FloatArray, rule: RuleConfig, t_stop: float) -> list[float]:
    """Whole-night reference of an integrating SpO2 alarm: per episode (valid readings below the
    limit; invalid seconds skipped), the end of the second at which it has ``delay_s`` valid
    seconds below the limit or ``satseconds`` of area, whichever comes first."""
    idx = np.flatnonzero(~np.isnan(spo2))
    x = spo2[idx]
    below = x < rule.threshold
    m = np.concatenate([[False], below, [False]])
    d = np.diff(m.astype(np.int8))
    out: list[float] = []
    for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
        count = np.arange(1, b - a + 1)
        area = np.cumsum(rule.threshold - x[a:b])
        hit = (count >= rule.delay_s) | ((area >= rule.satseconds) if rule.satseconds else False)
        k = np.flatnonzero(hit)
        if k.size and idx[a + k[0]] + 1 <= t_stop:
            out.append(float(idx[a + k[0]] + 1))
    return out


def _night_detections(path: Path) -> tuple[list[tuple[str, float]], list[tuple[str, float, float]]]:
    """One night through AlertEngine: (code, when announced or seen) of every alarm and scored
    event, and (code, announced, ended) of every alarm."""
    rec = read_recording(path)
    tracks = [replay.Track(s.label, s.spec.modality, s.spec.fs, s.data, s.valid)
              for s in rec.signals]
    engine = AlertEngine(path.stem)
    found: list[tuple[str, float]] = []
    spans: dict[str, tuple[str, float, float]] = {}
    for block in replay.blocks(path.stem, tracks):
        for a in engine.process(block):
            if isinstance(a, Alert) and a.state == AlertState.ACTIVE and a.end is None:
                found.append((a.code, a.emitted_at))
                spans.setdefault(a.id, (a.code, a.emitted_at, np.inf))
            elif isinstance(a, Alert) and a.state == AlertState.ENDED and a.id in spans:
                spans[a.id] = (*spans[a.id][:2], a.emitted_at)
            elif isinstance(a, dict) and a.get("type") == "event":
                found.append((str(a["code"]), float(a["detected_at"])))
    return found, list(spans.values())


def latency(folder: Path, nights: int) -> dict[str, Any]:
    """Replay ``nights`` SpO2 nights through AlertEngine; emission - criterion time. A criterion
    met again while its alarm is still announced (the alarm holds over short recoveries) needs
    no new announcement: it is counted as ``during_alarm``, not as missed."""
    lat: list[float] = []
    missed = during = 0
    files = sorted(p for p in folder.glob("*.edf")
                   if any(s.spec.modality == "spo2" for s in read_recording(p).signals))
    files = sorted(files, key=lambda p: (not p.name.startswith("D"), p.name))[:nights]
    for path in files:
        found, spans = _night_detections(path)
        s = next(s for s in read_recording(path).signals if s.spec.modality == "spo2")
        ref = reference_times(am.clean_spo2(s.data, s.valid), float(len(s.data)))
        for code, times in ref.items():
            emitted = np.asarray(sorted(t for c, t in found if c == code))
            for c in times:
                k = np.searchsorted(emitted, c - 1e-9)
                if k < emitted.size and emitted[k] - c < 60:
                    lat.append(float(emitted[k] - c))
                elif any(sc == code and on < c <= end for sc, on, end in spans):
                    during += 1
                else:
                    missed += 1
    arr = np.asarray(lat) if lat else np.asarray([np.nan])
    return {"nights": len(files), "alerts": len(lat), "during_alarm": during, "missed": missed,
            "p50_s": float(np.percentile(arr, 50)), "p99_s": float(np.percentile(arr, 99)),
            "max_s": float(np.max(arr)), "goal_p99_s": 1.0}


def validity_entry(set_name: str, fig: dict[str, Any]) -> dict[str, Any]:
    """What a shipped minute model's events cite: its cross-validated figures on a real set, and
    whether they back a yes/no claim (accuracy above always answering the larger class)."""
    keys = ("records", "minutes", "cv", "delay_s", "sensitivity", "specificity", "accuracy",
            "auroc", "ece", "majority_accuracy", "index_pearson_r", "index_mae_per_h")
    entry = {"set": set_name, **{k: fig[k] for k in keys}}
    entry["claims"] = bool(fig["accuracy"] > fig["majority_accuracy"])
    return entry


def _write_models(shipped: dict[str, Any], validation: dict[str, Any], kind: str) -> None:
    """Write the refitted models into ``apnea_minutes.json`` with the figures their events cite
    (an epoch-labelled set scored by the HR model is that model's external check)."""
    path = am.MODEL_PATH
    old = json.loads(path.read_text()) if path.exists() else {"models": {}}
    old["models"].update(shipped)
    old.setdefault("validation", {}).update(
        {k: v for k, v in validation.items() if k in shipped})
    old["note"] = (f"{kind} models fitted on all records of each set (scikit-learn "
                   f"HistGradientBoosting exported to arrays for boosted); features per minute "
                   f"at 60 (m + 1) + {am.DELAY_S} s; validation: record-wise cross-validated "
                   f"figures of the same recipe; see apnea_minutes.py")
    path.write_text(json.dumps(old, separators=(",", ":")) + "\n")  # compact: tree arrays
    print(f"wrote {path.name}: {sorted(shipped)}")


def _pairs(fig: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in fig.items())


def main(args: argparse.Namespace) -> int:
    figures: dict[str, Any] = {}
    shipped: dict[str, Any] = {}
    validation: dict[str, Any] = {}
    for folder in _sets(args.data):
        if list(folder.glob("*.minutes.csv")):
            fig, model = evaluate_minutes(folder, args.model, detail=args.per_record)
            shipped.update(model)
            validation[fig["model"]] = validity_entry(folder.name, fig)
            goals = GOALS["oximetry" if fig["model"] == "spo2_hr" else "hr"]
            fig.update({f"goal_{k}": v for k, v in goals.items()})
            if args.latency and fig["model"] == "spo2_hr":
                fig["latency"] = latency(folder, args.latency)
        else:
            # the HR model just fitted on the minute-labelled sets, else the shipped one
            hr = shipped.get("hr")
            hr_model = am.model_from_json(hr) if hr is not None else am.load_models()["hr"]
            fig = evaluate_epochs(folder, hr_model)
            if "hr" in validation:
                validation["hr"].setdefault("external", {})[folder.name] = {
                    k: fig[k] for k in ("records", "epochs", "sensitivity", "specificity",
                                        "accuracy", "auroc")}
        figures[folder.name] = fig
        print(f"{folder.name}: " + _pairs({k: v for k, v in fig.items()
                                           if k not in ("per_record", "groups")}))
        for row in fig.get("per_record", []):
            print(f"  {row['record']}: " + _pairs({k: v for k, v in row.items() if k != "record"}))
        for prefix, group in fig.get("groups", {}).items():
            print(f"  records {prefix}*: " + _pairs(group))
    if args.fit:
        _write_models(shipped, validation, args.model)
    if len(figures) == 1:  # one set: its figures at the top level
        figures = next(iter(figures.values()))
    print_figures(figures, as_json=args.json)
    return 0
