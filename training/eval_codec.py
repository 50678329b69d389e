#!/usr/bin/python3
"""Reconstruction quality of a trained codec on held-out clips (every 50th clip of the data set, never
trained on): multi-scale mel distance and SI-SNR, through the quantiser (the 4 codebooks the LM predicts),
next to two references that give the numbers a scale: the same distance between two different held-out
clips, and the unquantised autoencoder path. Optionally a picture of an original's mel spectrogram next
to its reconstruction.

    /usr/bin/python3 training/eval_codec.py --data DATA --codec-run RUN [--seconds 10] [--png OUT.png]

Mel distance: mean over FFT sizes 2048, 1024, 512, 256 (hop 1/4) of the L1 distance between log10 mel
spectrograms (64 bands, 0-16 kHz, floor 1e-5). SI-SNR: scale-invariant signal-to-noise ratio in dB.
"""
from __future__ import annotations

import argparse
import json
import os

import common  # noqa: F401  (BLAS threads, sys.path)
import numpy as np
import torch

import musicgen_hf as M
from common import load_index, read_wav_segment, setup_threads, split_index

SR = 32000


def mel_filters(n_fft: int, bands: int = 64, sr: int = SR) -> np.ndarray:
    hz_to_mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    mel_to_hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(sr / 2), bands + 2))
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    fb = np.zeros((bands, len(freqs)))
    for b in range(bands):
        lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
        fb[b] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return fb


def log_mel(x: np.ndarray, n_fft: int) -> np.ndarray:
    hop = n_fft // 4
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, n_fft // 2, mode="reflect"), n_fft)[::hop] * np.hanning(n_fft)
    return np.log10(np.maximum(np.abs(np.fft.rfft(frames, axis=1)) @ mel_filters(n_fft).T, 1e-5))


def mel_distance(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.mean([np.abs(log_mel(y, n) - log_mel(x, n)).mean() for n in (2048, 1024, 512, 256)]))


def si_snr(y: np.ndarray, x: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    target = (y @ x) / (x @ x + 1e-12) * x
    return float(10 * np.log10((target @ target) / ((y - target) @ (y - target) + 1e-12)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--codec-run", required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--count", type=int, default=40, help="held-out clips to measure")
    ap.add_argument("--png", default=None, help="write original vs reconstruction mel spectrograms of the first clip here")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    setup_threads(args.threads)
    with open(os.path.join(args.codec_run, "codec_config.json")) as f:
        cfg = json.load(f)
    model = M.EncodecModel(cfg).eval()
    st = torch.load(os.path.join(args.codec_run, "codec.pt"))
    model.load_state_dict(st["model"])
    _, valid = split_index(load_index(args.data))
    valid = valid[: args.count]
    n = int(args.seconds * SR)
    xs = [read_wav_segment(os.path.join(args.data, e["file"]), SR, n) for e in valid]  # skip the first second
    rows = {"quantised (4 codebooks)": [], "unquantised autoencoder": [], "another held-out clip": []}
    recon0 = None
    with torch.no_grad():
        for i, x in enumerate(xs):
            t = torch.from_numpy(x)[None, None]
            emb = model.encoder(t)
            yq = model.decoder(model.quantizer.decode(model.quantizer.encode(emb)))[0, 0, :n].numpy()
            ya = model.decoder(emb)[0, 0, :n].numpy()
            other = xs[(i + 1) % len(xs)]
            for name, y in (("quantised (4 codebooks)", yq), ("unquantised autoencoder", ya), ("another held-out clip", other)):
                rows[name].append((mel_distance(y, x), si_snr(y, x)))
            if i == 0:
                recon0 = yq
    print(f"codec {args.codec_run} (step {st['step']}), {len(xs)} held-out clips x {args.seconds:g} s")
    print("| compared with the original | mel distance | SI-SNR (dB) |")
    print("| --- | --- | --- |")
    for name, vals in rows.items():
        a = np.array(vals)
        print(f"| {name} | {a[:, 0].mean():.3f} ± {a[:, 0].std():.3f} | {a[:, 1].mean():.1f} ± {a[:, 1].std():.1f} |")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        kbps = len(model.quantizer.layers) * np.log2(cfg["codebook_size"]) * SR / np.prod(cfg["upsampling_ratios"]) / 1000
        fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
        for ax, y, title in ((axes[0], xs[0], f"original (held-out clip {valid[0]['index']}: {valid[0]['caption']})"), (axes[1], recon0, f"reconstruction through the 4 codebooks ({kbps:.1f} kbit/s)")):
            m = log_mel(y, 2048).T
            ax.imshow(m, origin="lower", aspect="auto", cmap="magma", vmin=-4, vmax=m.max(), extent=[0, len(y) / SR, 0, 64])
            ax.set_title(title, fontsize=9)
            ax.set_ylabel("mel band")
        axes[1].set_xlabel("seconds")
        fig.tight_layout()
        fig.savefig(args.png, dpi=80)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
