#!/usr/bin/python3
"""Does the prompt steer the demo model? Simple audio features of the clips that render_steering.ts
wrote, and how well they separate contrasting prompts (AUC: 0.5 is chance, 1.0 perfect separation).

    node --import tsx training/render_steering.ts --model DIR --out R
    /usr/bin/python3 training/eval_steering.py --clips R [--data DATA]    (--data: the same features on
                                                                       the training clips, as a ceiling)

Features (numpy only):
  onsets/s      peaks of the half-wave rectified spectral flux (tempo, note and drum density)
  hf share      energy above 5 kHz / all energy (cymbals, hi-hats, snares: drums)
  centroid      spectral centroid in Hz (brightness)
  major score   max correlation of the mean chroma with the 12 rotations of the Krumhansl-Kessler major
                profile minus the same for the minor profile (> 0: major)
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_generate import read_float_wav  # noqa: E402

KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
FEATURES = ["onsets/s", "hf share", "centroid", "major score"]


def spectrogram(x: np.ndarray, sr: int, frame_s: float = 0.064, hop_s: float = 0.016):
    n, hop = int(frame_s * sr), int(hop_s * sr)
    if len(x) < n:
        x = np.pad(x, (0, n - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
    mag = np.abs(np.fft.rfft(frames, axis=1))
    return mag, np.fft.rfftfreq(n, 1 / sr), hop_s


def mean_chroma(x: np.ndarray, sr: int) -> np.ndarray:
    """Pitch-class energy over the clip from 0.25 s frames (4 Hz bins resolve semitones above ~100 Hz),
    each frame normalised so that loud moments do not dominate."""
    mag, freqs, _ = spectrogram(x, sr, frame_s=0.256, hop_s=0.128)
    band = (freqs >= 100) & (freqs <= 4000)
    power = mag[:, band] ** 2
    power /= power.sum(1, keepdims=True) + 1e-12
    pc = np.round(12 * np.log2(freqs[band] / 440.0)).astype(int) % 12  # 0 = A
    chroma = np.zeros(12)
    np.add.at(chroma, pc, np.sqrt(power).mean(0))
    return chroma


def features(x: np.ndarray, sr: int) -> np.ndarray:
    mag, freqs, hop_s = spectrogram(x, sr)
    power = mag**2
    total = power.sum() + 1e-12
    hf = power[:, freqs >= 5000].sum() / total
    centroid = float((power.sum(0) * freqs).sum() / total)
    logmag = np.log(mag + 1e-4)
    flux = np.maximum(np.diff(logmag, axis=0), 0).sum(1)
    flux = np.convolve(flux, np.ones(3) / 3, mode="same")
    thr = np.median(flux) + 1.0 * flux.std()
    min_gap = int(0.05 / hop_s)
    peaks, last = 0, -min_gap
    for i in range(1, len(flux) - 1):
        if flux[i] > thr and flux[i] >= flux[i - 1] and flux[i] >= flux[i + 1] and i - last >= min_gap:
            peaks, last = peaks + 1, i
    onsets = peaks / (len(x) / sr)
    chroma = mean_chroma(x, sr)
    corr = lambda prof: max(np.corrcoef(chroma, np.roll(prof, r))[0, 1] for r in range(12))  # noqa: E731
    major = corr(KK_MAJOR) - corr(KK_MINOR)
    return np.array([onsets, hf, centroid, major])


def auc(a: np.ndarray, b: np.ndarray) -> float:
    """P(a > b) + P(a == b) / 2 over all pairs (Mann-Whitney)."""
    gt = (a[:, None] > b[None, :]).mean()
    eq = (a[:, None] == b[None, :]).mean()
    return float(gt + eq / 2)


def loo_accuracy(a: np.ndarray, b: np.ndarray) -> float:
    """Leave-one-out nearest-centroid accuracy on standardised features: a small classifier."""
    X = np.concatenate([a, b])
    y = np.array([0] * len(a) + [1] * len(b))
    X = (X - X.mean(0)) / (X.std(0) + 1e-12)
    hits = 0
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        c0 = X[keep & (y == 0)].mean(0)
        c1 = X[keep & (y == 1)].mean(0)
        hits += int((np.linalg.norm(X[i] - c1) < np.linalg.norm(X[i] - c0)) == bool(y[i]))
    return hits / len(X)


def table(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> list:
    rows = [f"| {name_a} vs {name_b} | n = {len(a)} + {len(b)} | | |"]
    for j, f in enumerate(FEATURES):
        rows.append(f"| {f} | {a[:, j].mean():.3g} ± {a[:, j].std():.2g} | {b[:, j].mean():.3g} ± {b[:, j].std():.2g} | {auc(a[:, j], b[:, j]):.2f} |")
    rows.append(f"| nearest-centroid LOO accuracy (4 features) | | | {loo_accuracy(a, b):.2f} |")
    return rows


def load_dir(d: str, start: float = 0.0, end: float | None = None) -> np.ndarray:
    out = []
    for path in sorted(glob.glob(os.path.join(d, "*.wav")), key=lambda p: int(os.path.basename(p)[:-4])):
        x, sr = read_wav(path)
        out.append(features(x[int(start * sr) : None if end is None else int(end * sr)], sr))
    if not out:
        raise SystemExit(f"no WAV files in {d}")
    return np.array(out)


def read_wav(path: str):
    with open(path, "rb") as f:
        head = f.read(64)
    sr = int.from_bytes(head[24:28], "little")
    return read_float_wav(path), sr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", default=None, help="output directory of render_steering.ts")
    ap.add_argument("--data", default=None, help="data set directory: the same features on held-out training clips")
    ap.add_argument("--data-count", type=int, default=200)
    ap.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = ap.parse_args()
    lines = ["| comparison / feature | first | second | AUC (first > second) |", "| --- | --- | --- | --- |"]
    if args.data:
        with open(os.path.join(args.data, "captions.jsonl")) as f:
            entries = [json.loads(line) for line in f][: args.data_count]
        feats = {e["index"]: features(*read_wav(os.path.join(args.data, e["file"]))) for e in entries}
        pick = lambda cond: np.array([feats[e["index"]] for e in entries if cond(e["params"])])  # noqa: E731
        lines += table("data: fast with drums", pick(lambda p: p["drums"] and p["tempo"] == "fast"),
                       "data: slow without drums", pick(lambda p: not p["drums"] and p["tempo"] == "slow"))
        lines += table("data: major", pick(lambda p: p["mode"] == "major"), "data: minor", pick(lambda p: p["mode"] == "minor"))
    if not args.clips and not args.data:
        ap.error("give --clips, --data or both")
    off = os.path.join(args.clips or "", "offline")
    for a, b in ([] if not (args.clips and os.path.isdir(off)) else [("fast-drums", "slow-piano"), ("bright-major", "dark-minor")]):
        lines += table(f'"{a.replace("-", " ")}"', load_dir(os.path.join(off, a)), f'"{b.replace("-", " ")}"', load_dir(os.path.join(off, b)))
    mid = os.path.join(args.clips or "", "midstream")
    if args.clips and os.path.isdir(mid):
        with open(os.path.join(mid, "switch.json")) as f:
            sw = json.load(f)
        s = sw["switchSeconds"]
        parts = {}
        for d in sorted(x for x in os.listdir(mid) if os.path.isdir(os.path.join(mid, x))):
            before = load_dir(os.path.join(mid, d), 1.0, s)
            after = load_dir(os.path.join(mid, d), s + 2.0, None)
            a, b = d.split("_to_")
            parts[(a, b)] = before, after
            lines += table(f"stream {d}: before (1-{s} s, {a})", before, f"after ({s + 2}-end, {b})", after)
        # Across the two directions at the same times: before the change A->B streams play A and B->A
        # streams play B; after it the roles swap, so the AUCs should flip to the other side of 0.5.
        # Same seeds, same times in the stream: only the prompts differ.
        for (a, b), (before_ab, after_ab) in sorted(parts.items()):
            if (b, a) in parts and a < b:
                before_ba, after_ba = parts[(b, a)]
                lines += table(f"before the change (1-{s} s): {a}_to_{b}", before_ab, f"{b}_to_{a}", before_ba)
                lines += table(f"after the change ({s + 2}-end): {a}_to_{b}", after_ab, f"{b}_to_{a}", after_ba)
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
