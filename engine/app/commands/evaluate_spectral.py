"""``sleepstream evaluate spectral``: the EEG spectral stage model on real, expert-scored nights.

``--data`` is the folder of Sleep-EDF per-epoch spectral summaries (``SCnnnn.epochs.csv``). Each
night is trimmed to its sleep period with 30 min of wake on either side. Record-wise
``--folds``-fold cross-validation: both nights of a subject fall in the same fold, and the
normalisation prior, the standardisation and the model are refitted on the training nights of
each fold. The figures are those of the held-out nights, causal (current and past epochs only):
each derivation alone (a bed with one EEG channel; Fpz-Cz and Pz-Oz pooled) and both together
(the normalised geometric mean of the calibrated probabilities, as the engine combines a
bed's channels), for EEG at >= 100 Hz (``full``) and without the gamma band
(``no_gamma``, EEG sampled below 100 Hz). Calibration: a temperature per head fitted on the
held-out logits, the expected calibration error (ECE) before and after (the ECE after is
measured fold-wise: temperature fitted on the other folds), for one channel in each class set
and for two channels combined as live. Also scored: one 30-min excerpt per held-out night
from a random point of its sleep period, staged as a recording that starts there (the bed's
normalisation without the night's opening wake). ``--cross-montage`` adds the montage transfer: the
``full`` head fitted (prior included) on one derivation of the training folds, scored on each
derivation of the held-out nights. ``--save DIR`` then fits on every
night and writes ``spectral.npz`` + ``spectral.json`` (validity table from these figures).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.engine.report import print_figures
from sleepstream.engine.types import STAGES, FloatArray

GOALS = {"accuracy": 0.82, "kappa": 0.76}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="folder of *.epochs.csv summaries")
    p.add_argument("--folds", type=int, default=5, help="record-wise folds (default 5)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    p.add_argument("--cross-montage", action="store_true",
                   help="also fit on one derivation and score on the other (montage transfer)")
    p.add_argument("--save", type=Path, default=None, metavar="DIR",
                   help="fit on all nights and write the spectral model into DIR")


def _metrics(y: np.ndarray, pred: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, f1_score

    labels = list(range(len(classes)))
    f1 = f1_score(y, pred, labels=labels, average=None, zero_division=0)
    majority = float(np.bincount(y, minlength=len(classes)).max() / len(y))
    return {
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "kappa": round(float(cohen_kappa_score(y, pred)), 4),
        "macro_f1": round(float(f1.mean()), 4),
        "f1": {c: round(float(v), 4) for c, v in zip(classes, f1, strict=True)},
        "majority_accuracy": round(majority, 4),
        "confusion": confusion_matrix(y, pred, labels=labels).tolist(),
        "epochs": len(y),
    }


def _collapse(p: FloatArray, y: np.ndarray, kind: str) -> tuple[FloatArray, np.ndarray]:
    from sleepstream.engine.inference.spectral_model import CLASS_SETS, COLLAPSE

    idx = np.asarray(COLLAPSE[kind])
    q = np.zeros((len(p), len(CLASS_SETS[kind])))
    np.add.at(q.T, idx, p.T)
    return q, idx[y]


def _live_combine(probs: list[FloatArray]) -> FloatArray:
    """The engine's combination of a bed's channels: the normalised geometric mean."""
    logp = np.mean([np.log(np.maximum(p, 1e-12)) for p in probs], axis=0)
    q = np.exp(logp - logp.max(axis=1, keepdims=True))
    return np.asarray(q / q.sum(axis=1, keepdims=True), np.float64)


def _figures(held: Any, head: str, temps: list[float]) -> dict[str, Any]:
    """Single-derivation (pooled) and two-derivation figures of one head, the two combined as
    the engine combines them; ECE with each fold's temperature fitted on the other folds."""
    from sleepstream.engine.inference.spectral_model import CLASS_SETS
    from sleepstream.models import spectral_train as st

    single_z: list[FloatArray] = []
    single_y: list[np.ndarray] = []
    cal_p: list[FloatArray] = []
    both_p: list[FloatArray] = []
    both_y: list[np.ndarray] = []
    for i, per in enumerate(held.logits[head]):
        y = held.labels[i]
        t = temps[held.folds[i]]
        cal = [st.softmax(z / t) for z in per.values()]
        single_z.extend(per.values())
        single_y.extend(y for _ in per)
        cal_p.extend(cal)
        both_p.append(_live_combine(cal))
        both_y.append(y)
    z1, y1 = np.concatenate(single_z), np.concatenate(single_y)
    pb, yb = np.concatenate(both_p), np.concatenate(both_y)
    out: dict[str, Any] = {"single": _metrics(y1, z1.argmax(1), STAGES),
                           "both": _metrics(yb, pb.argmax(1), STAGES)}
    p_cal = np.concatenate(cal_p)
    out["ece_uncalibrated"] = round(st.ece(st.softmax(z1), y1), 4)
    out["ece"] = round(st.ece(p_cal, y1), 4)
    out["ece_both"] = round(st.ece(pb, yb), 4)
    for kind in ("four", "two"):
        q, yk = _collapse(p_cal, y1, kind)
        out[f"single_{kind}"] = _metrics(yk, q.argmax(1), CLASS_SETS[kind])
        out[f"ece_{kind}"] = round(st.ece(q, yk), 4)
    return out


def _fold_temperatures(held: Any, head: str, k: int) -> list[float]:
    """Per fold, the temperature fitted on the held-out logits of the other folds."""
    from sleepstream.models import spectral_train as st

    temps = []
    for f in range(k):
        z = [v for i, per in enumerate(held.logits[head]) if held.folds[i] != f
             for v in per.values()]
        y = [held.labels[i] for i, per in enumerate(held.logits[head]) if held.folds[i] != f
             for _ in per]
        temps.append(st.fit_temperature(np.concatenate(z), np.concatenate(y)))
    return temps


def validity(figs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per modality subset, the finest class set whose held-out figure (one EEG channel) beats
    always answering the majority class, with the figures and calibration it was chosen on."""
    table: dict[str, Any] = {}
    for subset, head in (("eeg", "full"), ("eeg_below_100hz", "no_gamma")):
        f = figs[head]
        chosen, ece = "none", None
        for kind, m, e in (("five", f["single"], f["ece"]),
                           ("four", f["single_four"], f["ece_four"]),
                           ("two", f["single_two"], f["ece_two"])):
            if m["accuracy"] > m["majority_accuracy"] and m["kappa"] > 0.2:
                chosen, ece = kind, e
                break
        table[subset] = {
            "classes": chosen, "modalities": ["eeg"], "path": f"spectral {head}",
            "accuracy": f["single"]["accuracy"], "kappa": f["single"]["kappa"],
            "majority_accuracy": f["single"]["majority_accuracy"],
            "kappa_four": f["single_four"]["kappa"], "kappa_two": f["single_two"]["kappa"],
            "ece": ece, "ece_two_channels": f["ece_both"],
            "montages": "Fpz-Cz, Pz-Oz (Sleep-EDF); other montages not measured",
            "source": "Sleep-EDF SC, 20 nights, record-wise held-out folds"}
    table["tokens"] = {"classes": "none", "modalities": ["any without valid EEG"],
                       "path": "token transformer", "ece": None,
                       "source": "no real-data figure of the token transformer beats the "
                       "majority class; it abstains"}
    return table


def _print(head: str, f: dict[str, Any]) -> None:
    for part in ("single", "both"):
        m = f[part]
        print(f"[{head}] {part:6s} accuracy {m['accuracy']:.3f}  kappa {m['kappa']:.3f}  "
              f"macro-F1 {m['macro_f1']:.3f}  (majority {m['majority_accuracy']:.3f}, "
              f"{m['epochs']} epochs)")
        print("   per-stage F1 " + "  ".join(f"{s} {v:.3f}" for s, v in m["f1"].items()))
        print("   confusion (rows truth W..REM): " + " ".join(str(r) for r in m["confusion"]))
    print(f"[{head}] ECE {f['ece_uncalibrated']:.3f} -> {f['ece']:.3f} after temperature "
          f"(two channels combined as live: {f['ece_both']:.3f}); "
          f"4-class kappa {f['single_four']['kappa']:.3f}, "
          f"sleep/wake kappa {f['single_two']['kappa']:.3f}")


def _excerpts(held: Any) -> dict[str, Any]:
    """One channel (both pooled), ``full`` head, on the held-out 30-min mid-sleep excerpts."""
    z = np.concatenate([v for per in held.excerpts["full"] for v in per.values()])
    y = np.concatenate([held.excerpt_labels[i] for i, per in enumerate(held.excerpts["full"])
                        for _ in per])
    m = _metrics(y, z.argmax(1), STAGES)
    print(f"[full] 30-min excerpts from mid-sleep, one channel: accuracy {m['accuracy']:.3f}  "
          f"kappa {m['kappa']:.3f}  macro-F1 {m['macro_f1']:.3f}  ({m['epochs']} epochs)")
    return {key: m[key] for key in ("accuracy", "kappa", "macro_f1", "epochs")}


def _cross_montage(nights: list[Any], k: int) -> dict[str, Any]:
    from sleepstream.models import spectral_train as st

    out = {}
    for pair, r in st.cross_montage(nights, k).items():
        m = _metrics(r["truth"], r["pred"], STAGES)
        out[pair] = {key: m[key] for key in ("accuracy", "kappa", "macro_f1", "epochs")}
        print(f"[montage] train {pair.replace('->', ', test ')}: accuracy {m['accuracy']:.3f}  "
              f"kappa {m['kappa']:.3f}  macro-F1 {m['macro_f1']:.3f}")
    return out


def main(args: argparse.Namespace) -> int:
    from sleepstream.models import spectral_data as sd
    from sleepstream.models import spectral_train as st

    nights = [sd.trim(n) for n in sd.load_nights(args.data)]
    print(f"{len(nights)} nights, {sum(len(n) for n in nights)} epochs "
          f"{sd.stage_counts(nights)}; {args.folds} record-wise folds (by subject)")
    held = st.cross_validate(nights, args.folds)
    figs, temps = {}, {}
    for head in held.logits:
        fold_t = _fold_temperatures(held, head, args.folds)
        figs[head] = _figures(held, head, fold_t)
        z = np.concatenate([v for per in held.logits[head] for v in per.values()])
        y = np.concatenate([held.labels[i] for i, per in enumerate(held.logits[head])
                            for _ in per])
        temps[head] = st.fit_temperature(z, y)
        _print(head, figs[head])
    table = validity(figs)
    if args.save is not None:
        from dataclasses import replace

        prior, fitted = st.train(nights, tuple(held.logits))
        heads = {h: replace(m, temperature=temps[h]) for h, m in fitted.items()}
        st.save(args.save, prior, heads, table,
                {"trained_on": "Sleep-EDF SC4001-SC4092, 20 nights (trimmed)",
                 "figures": {h: {k: v for k, v in f.items() if k in ("single", "both")}
                             for h, f in figs.items()}})
        print(f"wrote {args.save}")
    both, single = figs["full"]["both"], figs["full"]["single"]
    out = {"accuracy": both["accuracy"], "kappa": both["kappa"], "macro_f1": both["macro_f1"],
           "f1": both["f1"], "goal_accuracy": GOALS["accuracy"], "goal_kappa": GOALS["kappa"],
           "single_accuracy": single["accuracy"], "single_kappa": single["kappa"],
           "single_macro_f1": single["macro_f1"],
           "no_gamma_single_kappa": figs["no_gamma"]["single"]["kappa"],
           "ece": figs["full"]["ece"], "ece_no_gamma": figs["no_gamma"]["ece"],
           "ece_two_channels": figs["full"]["ece_both"],
           "ece_two_channels_no_gamma": figs["no_gamma"]["ece_both"],
           "confusion": both["confusion"], "classes": {k: v["classes"] for k, v in table.items()}}
    out["excerpt_30min_single"] = _excerpts(held)
    if args.cross_montage:
        out["cross_montage"] = _cross_montage(nights, args.folds)
    print_figures(out, as_json=args.json)
    return 0
