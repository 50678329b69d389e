#!/usr/bin/python3
"""Training-step speed of the codec and of the LM at given sizes, on synthetic inputs (no data set
needed): seconds per step (wall and CPU) at --threads threads. Used for the estimates in
docs/demo-model.md.

    /usr/bin/python3 training/bench.py codec --filters 8 --hidden 64 --codebook-size 1024 --batch 8 --segment 1.0
    /usr/bin/python3 training/bench.py lm --dim 256 --layers 4 --t5-dim 128 --batch 16 --frames 500
"""
import argparse
import time

import common  # noqa: F401  (BLAS threads, sys.path)
import torch
import torch.nn.functional as F

import musicgen_hf as M
from common import setup_threads
from train_codec import spectral_loss
from train_lm import lm_loss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["codec", "lm"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--segment", type=float, default=1.0)
    ap.add_argument("--filters", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--codebook-size", type=int, default=1024)
    ap.add_argument("--lstm-layers", type=int, default=2)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--t5-dim", type=int, default=128)
    ap.add_argument("--t5-layers", type=int, default=2)
    ap.add_argument("--text-len", type=int, default=20)
    args = ap.parse_args()
    setup_threads(args.threads)
    torch.manual_seed(0)
    cfg = M.make_config(text_vocab=308, t5_d_model=args.t5_dim, t5_d_kv=args.t5_dim // 4, t5_d_ff=2 * args.t5_dim, t5_layers=args.t5_layers,
                        dec_hidden=args.dim, dec_layers=args.layers, dec_heads=args.heads, dec_ffn=4 * args.dim,
                        max_positions=max(512, args.frames + 8), codebook_size=args.codebook_size, codec_hidden=args.hidden,
                        codec_filters=args.filters, codec_lstm_layers=args.lstm_layers)
    if args.what == "codec":
        model = M.EncodecModel(cfg["audio_encoder"])
        params = list(model.parameters())
        n = int(args.segment * 32000)

        def step():
            x = torch.randn(args.batch, 1, n) * 0.1
            q, commit, _ = model.quantizer.train_forward(model.encoder(x))
            y = model.decoder(q)[..., :n]
            return 0.1 * F.l1_loss(y, x) + spectral_loss(y[:, 0], x[:, 0]) + commit
        what = f"codec filters {args.filters} hidden {args.hidden} codebooks 4x{args.codebook_size} lstm {args.lstm_layers}, batch {args.batch} x {args.segment} s"
    else:
        model = M.MusicgenModel(cfg)
        params = [p for n_, p in model.named_parameters() if not n_.startswith("audio_encoder.")]
        V = args.codebook_size

        def step():
            codes = torch.randint(0, V, (args.batch, 4, args.frames))
            text = torch.randint(3, 308, (args.batch, args.text_len))
            loss, _ = lm_loss(model, text, torch.ones_like(text), M.delay_codes(codes, V), V)
            return loss
        what = f"lm decoder {args.dim} x {args.layers} layers, T5 {args.t5_dim} x {args.t5_layers}, batch {args.batch} x {args.frames} frames"
    opt = torch.optim.AdamW(params, lr=1e-4)
    nparams = sum(p.numel() for p in params)

    def run():
        loss = step()
        opt.zero_grad()
        loss.backward()
        opt.step()
    run()  # warm-up
    w0, c0 = time.time(), time.process_time()
    for _ in range(args.steps):
        run()
    w, c = (time.time() - w0) / args.steps, (time.process_time() - c0) / args.steps
    print(f"{what}: {nparams / 1e6:.2f} M params, {w:.2f} s/step wall, {c:.2f} s/step CPU ({args.threads} thread(s))")


if __name__ == "__main__":
    main()
