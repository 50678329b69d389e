#!/usr/bin/python3
"""Stage 1: train the EnCodec-style codec (SEANet encoder/decoder with weight-normed convolutions and an
LSTM, residual VQ with 4 EMA codebooks, 50 frames/s at 32 kHz) on the generated clips.

Losses: L1 on the waveform, multi-scale STFT (L1 on log magnitudes + spectral convergence, FFT sizes
2048..128), VQ commitment. The first --vq-start steps train a plain autoencoder (no quantiser); then the
codebooks are k-means-initialised on the latents and trained by EMA with dead-code restarts. Without the
warm-up the small-batch VQ collapses the latent to a near-constant (measured: 9 distinct first-level
codes after 300 steps). No adversarial losses (too slow for 2 CPU cores; see docs/demo-model.md).

    /usr/bin/python3 training/train_codec.py --data DATA --run RUN [--steps 20000 --filters 8 --hidden 64 --codebook-size 1024]
    /usr/bin/python3 training/train_codec.py --data DATA --run RUN --encode-codes

RUN/codec_config.json holds the audio_encoder config, RUN/codec_args.json the arguments, RUN/codec.pt the
latest state (model, EMA codebooks, optimizer, step), RUN/codec_log.jsonl the log: running the command
again resumes (arguments not given again come from codec_args.json; e.g. `--steps 30000` alone extends). --encode-codes then writes
RUN/codes.npz (codes of every clip) for stage 2 (train_lm.py).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time

import common  # noqa: F401  (sets sys.path)
import numpy as np
import torch
import torch.nn.functional as F

import musicgen_hf as M
from common import Logger, cosine_lr, resolve_run_args, load_index, read_wav_segment, save_torch, setup_threads, split_index, wav_frames

SR = 32000


def stft_mag(x: torch.Tensor, n_fft: int, floor: float = 1e-5) -> torch.Tensor:
    win = torch.hann_window(n_fft, device=x.device)
    s = torch.stft(x, n_fft, hop_length=n_fft // 4, win_length=n_fft, window=win, return_complex=True, center=True, pad_mode="reflect")
    return s.abs().clamp(min=floor)


def spectral_loss(y: torch.Tensor, x: torch.Tensor, sizes=(2048, 1024, 512, 256, 128), floor: float = 1e-5) -> torch.Tensor:
    """y, x [B, N]: mean over FFT sizes of L1(log |Y|, log |X|) + ||Y| - |X||_F / ||X||_F. Magnitudes
    are clamped at `floor` first: on our -20 dBFS clips the median bin is ~0.05 and the peaks 10-100, so a
    floor of ~1e-2 keeps the log loss on what is heard (harmonics, onsets) rather than on the quiet bulk
    of the bins, which otherwise dominates it."""
    total = y.new_zeros(())
    for n in sizes:
        Y, X = stft_mag(y, n, floor), stft_mag(x, n, floor)
        total = total + F.l1_loss(torch.log(Y), torch.log(X)) + torch.linalg.norm(Y - X) / torch.linalg.norm(X).clamp(min=1e-7)
    return total / len(sizes)


def codec_config(args) -> dict:
    return M.make_config(text_vocab=1, codec_filters=args.filters, codec_hidden=args.hidden, codebook_size=args.codebook_size,
                         codec_lstm_layers=args.lstm_layers)["audio_encoder"]


class Segments:
    def __init__(self, data: str, entries, seconds: float, seed: int):
        self.files = [os.path.join(data, e["file"]) for e in entries]
        self.lengths = [wav_frames(f) for f in self.files]
        self.n = int(round(seconds * SR))
        self.rng = random.Random(seed)

    def batch(self, size: int) -> torch.Tensor:
        out = []
        for _ in range(size):
            i = self.rng.randrange(len(self.files))
            start = self.rng.randrange(max(1, self.lengths[i] - self.n + 1))
            x = read_wav_segment(self.files[i], start, self.n)
            out.append(x * (10 ** (self.rng.uniform(-6, 3) / 20)))  # random gain: robustness to level
        return torch.from_numpy(np.stack(out))[:, None]


def evaluate(model: M.EncodecModel, data: str, entries, seconds: float = 2.0) -> dict:
    """Reconstruction through the quantizer (inference path) on held-out clips."""
    model.eval()
    n = int(seconds * SR)
    xs = torch.from_numpy(np.stack([read_wav_segment(os.path.join(data, e["file"]), SR, n) for e in entries[:8]]))[:, None]
    with torch.no_grad():
        emb = model.encoder(xs)
        if not bool(model.quantizer.layers[0].codebook.inited.item()):
            y = model.decoder(emb)[..., :n]
            spec = float(spectral_loss(y[:, 0], xs[:, 0]))
            snr = float(10 * torch.log10(xs.pow(2).mean() / (y - xs).pow(2).mean().clamp(min=1e-12)))
            model.train()
            return {"valid_spec_unquantized": spec, "valid_snr_db_unquantized": snr}
        codes = model.quantizer.encode(emb)
        y = model.decode_codes(codes)[..., :n]
        spec = float(spectral_loss(y[:, 0], xs[:, 0]))
        err = (y - xs).pow(2).mean()
        snr = float(10 * torch.log10(xs.pow(2).mean() / err.clamp(min=1e-12)))
        usage = []
        for q in range(codes.shape[1]):
            counts = torch.bincount(codes[:, q].flatten(), minlength=model.config["codebook_size"]).float()
            p = counts / counts.sum()
            usage.append(round(float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum())), 1))
    model.train()
    return {"valid_spec": spec, "valid_snr_db": snr, "codebook_perplexity": usage}


def train(args) -> None:
    setup_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.run, exist_ok=True)
    cfg_path = os.path.join(args.run, "codec_config.json")
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            cfg = json.load(f)
    elif args.init_from:  # the architecture of the run we start from
        with open(os.path.join(os.path.dirname(args.init_from), "codec_config.json")) as f:
            cfg = json.load(f)
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2)
    else:
        cfg = codec_config(args)
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2)
    model = M.EncodecModel(cfg)
    if args.decoder_only:
        # Encoder and codebooks frozen (their codes are what the LM trains on); only the decoder learns,
        # on quantised latents: the codes a trained codec gives are final while its decoder improves.
        for p in list(model.encoder.parameters()) + list(model.quantizer.parameters()):
            p.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=args.lr, betas=(args.beta1, 0.99), weight_decay=1e-4)
    ckpt_path = os.path.join(args.run, "codec.pt")
    step = 0
    if args.init_from and not os.path.exists(ckpt_path):
        st = torch.load(args.init_from)
        model.load_state_dict(st["model"])
        print(f"initialised from {args.init_from} (step {st['step']})")
    if os.path.exists(ckpt_path):
        st = torch.load(ckpt_path)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        print(f"resumed {ckpt_path} at step {step}")
    entries = load_index(args.data)
    train_e, valid_e = split_index(entries)
    seg = Segments(args.data, train_e, args.segment, args.seed * 1000 + step)
    log = Logger(os.path.join(args.run, "codec_log.jsonl"))
    nparams = sum(p.numel() for p in model.parameters())
    print(f"codec: {nparams / 1e6:.2f} M parameters, {len(train_e)} train / {len(valid_e)} valid clips, batch {args.batch} x {args.segment} s")
    model.train()
    t_last, s_last = time.time(), step
    end = min(args.steps, args.stop_at or args.steps)
    while step < end:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, args.steps, args.lr, args.warmup)
        if not args.decoder_only and step >= args.vq_start and not bool(model.quantizer.layers[0].codebook.inited.item()):
            with torch.no_grad():
                lat = torch.cat([model.encoder(seg.batch(args.batch)) for _ in range(args.init_batches)])
            model.quantizer.init_from(lat)
            log.log(stage="codec", step=step, event=f"k-means init of the codebooks on {lat.shape[0] * lat.shape[2]} latent frames")
        x = seg.batch(args.batch)
        if args.decoder_only:
            with torch.no_grad():
                emb = model.quantizer.decode(model.encode_codes(x))
        else:
            emb = model.encoder(x)
        if args.decoder_only:
            q, commit = emb, emb.new_zeros(())
        elif step >= args.vq_start:
            q, commit, _ = model.quantizer.train_forward(emb)
        else:  # autoencoder warm-up: the latent learns to carry the signal before it is quantised
            q, commit = emb, emb.new_zeros(())
        y = model.decoder(q)[..., : x.shape[-1]]
        l1 = F.l1_loss(y, x)
        spec = spectral_loss(y[:, 0], x[:, 0], sizes=args.fft_sizes, floor=args.spec_floor)
        loss = args.w_l1 * l1 + args.w_spec * spec + args.w_commit * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 5.0)
        opt.step()
        step += 1
        if step % args.log_every == 0 or step == end:
            now = time.time()
            log.log(stage="codec", step=step, loss=float(loss), l1=float(l1), spec=float(spec), commit=float(commit),
                    lr=opt.param_groups[0]["lr"], steps_per_s=(step - s_last) / (now - t_last))
            t_last, s_last = now, step
        if step % args.save_every == 0 or step == end:
            save_torch(ckpt_path, {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "config": cfg})
            if valid_e:
                log.log(stage="codec-valid", step=step, **evaluate(model, args.data, valid_e))


@torch.no_grad()
def encode_codes(args) -> None:
    """Codes of every clip (full length, one chunk) -> RUN/codes.npz {index [N], codes [N, 4, frames] int16}."""
    setup_threads(args.threads)
    with open(os.path.join(args.run, "codec_config.json")) as f:
        cfg = json.load(f)
    model = M.EncodecModel(cfg).eval()
    model.load_state_dict(torch.load(os.path.join(args.run, "codec.pt"))["model"])
    entries = load_index(args.data)
    lens = {wav_frames(os.path.join(args.data, e["file"])) for e in entries}
    if len(lens) != 1:
        raise SystemExit(f"clips of different lengths ({sorted(lens)} samples); generate them with one --seconds")
    n = lens.pop()
    idx, codes = [], []
    t0 = time.time()
    for b in range(0, len(entries), 16):  # 16 clips per pass: small convolutions run faster batched
        group = entries[b : b + 16]
        x = torch.from_numpy(np.stack([read_wav_segment(os.path.join(args.data, e["file"]), 0, n) for e in group]))[:, None]
        codes.extend(model.encode_codes(x).numpy().astype(np.int16))
        idx.extend(e["index"] for e in group)
    out = os.path.join(args.run, "codes.npz")
    np.savez(out + ".partial.npz", index=np.array(idx), codes=np.stack(codes))
    os.replace(out + ".partial.npz", out)
    print(f"encoded {len(codes)} clips ({codes[0].shape[-1]} frames each) in {time.time() - t0:.1f} s -> {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--segment", type=float, default=1.0, help="seconds per training example")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--filters", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--codebook-size", type=int, default=1024)
    ap.add_argument("--lstm-layers", type=int, default=2)
    ap.add_argument("--w-l1", type=float, default=0.1)
    ap.add_argument("--w-spec", type=float, default=1.0)
    ap.add_argument("--w-commit", type=float, default=1.0)
    ap.add_argument("--spec-floor", type=float, default=1e-5, help="magnitude floor of the spectral loss (see spectral_loss)")
    ap.add_argument("--fft-sizes", type=lambda s: tuple(int(x) for x in s.split(",")), default=(2048, 1024, 512, 256, 128),
                    help="FFT sizes of the spectral loss, comma separated (large sizes resolve harmonics, small ones onsets)")
    ap.add_argument("--vq-start", type=int, default=1000, help="steps of plain autoencoder training before quantisation starts")
    ap.add_argument("--init-batches", type=int, default=8, help="batches of latents for the k-means codebook init")
    ap.add_argument("--decoder-only", action="store_true", help="freeze the encoder and codebooks, train the decoder on quantised latents")
    ap.add_argument("--init-from", default=None, help="codec.pt of another run to start from (with --decoder-only: the run whose codes the LM uses)")
    ap.add_argument("--stop-at", type=int, default=0, help="end at this step without changing the --steps schedule (time-boxed runs)")
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--encode-codes", action="store_true", help="encode every clip with the trained codec (no training)")
    args = ap.parse_args()
    if args.encode_codes:
        encode_codes(args)
    else:
        train(resolve_run_args(ap, args, os.path.join(args.run, "codec_args.json")))


if __name__ == "__main__":
    main()
