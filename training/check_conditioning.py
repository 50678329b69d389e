#!/usr/bin/python3
"""Fast check of the LM stage alone (no audio, no codec): trains train_lm.py for a few hundred steps on
synthetic "codes" that encode the caption's parameters (codebook 0: style and a tempo-dependent rhythm,
1: mode, 2: noise, 3: drums or not), then generates greedily with classifier-free guidance from prompts
and checks that the style comes out right. This proves that captions reach the decoder, that caption
dropout teaches the null condition, and that guidance uses both, independently of codec quality.

    /usr/bin/python3 training/check_conditioning.py [--clips 200 --steps 300]      (about 2-3 minutes)
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402,F401
import numpy as np  # noqa: E402
import torch  # noqa: E402

import musicgen_hf as M  # noqa: E402
from generate import CAPTION_WORDS, STYLES, make_caption, sample_params  # noqa: E402
from text_tokenizer import CaptionTokenizer, build_vocab  # noqa: E402

FRAMES = 200


def fake_codes(p: dict, rng: np.random.Generator) -> np.ndarray:
    styles = list(STYLES)
    period = {"fast": 4, "moderate": 8, "slow": 16}[p["tempo"]]
    t = np.arange(FRAMES)
    c = np.zeros((4, FRAMES), np.int16)
    c[0] = styles.index(p["style"]) * 100 + (t // period) % 4
    c[1] = (500 if p["mode"] == "minor" else 600) + rng.integers(0, 4, FRAMES)
    c[2] = rng.integers(0, 1024, FRAMES)
    c[3] = (900 if p["drums"] else 950) + t % period
    return c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--keep", default=None, help="keep the work directory here")
    args = ap.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="riverrun-cond-")
    data, codec, run = (os.path.join(work, d) for d in ("data", "codec", "lm"))
    for d in (data, codec):
        os.makedirs(d, exist_ok=True)
    rng = random.Random(0)
    nrng = np.random.default_rng(0)
    entries, codes = [], []
    for i in range(args.clips):
        p = sample_params(rng, FRAMES / 50)
        entries.append({"index": i, "file": f"clips/{i:06d}.wav", "caption": make_caption(p, rng), "params": p})
        codes.append(fake_codes(p, nrng))
    with open(os.path.join(data, "captions.jsonl"), "w") as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")
    with open(os.path.join(codec, "codec_config.json"), "w") as f:
        json.dump(M.make_config(text_vocab=1, codebook_size=1024)["audio_encoder"], f)
    np.savez(os.path.join(codec, "codes.npz"), index=np.arange(args.clips), codes=np.stack(codes))
    cmd = [sys.executable, os.path.join(HERE, "train_lm.py"), "--data", data, "--codec-run", codec, "--run", run,
           "--steps", str(args.steps), "--batch", "8", "--frames", "100", "--dim", "128", "--layers", "2", "--t5-dim", "64",
           "--log-every", "100", "--save-every", str(args.steps), "--warmup", "20", "--lr", "2e-3"]
    subprocess.run(cmd, check=True)
    with open(os.path.join(run, "model_config.json")) as f:
        cfg = json.load(f)
    model = M.MusicgenModel(cfg).eval()
    model.load_state_dict(torch.load(os.path.join(run, "lm.pt"))["model"], strict=False)
    tok = CaptionTokenizer(build_vocab(CAPTION_WORDS))
    styles = list(STYLES)
    right = {1.0: 0, 3.0: 0}
    for s, style in enumerate(styles):
        ids = torch.tensor([tok.encode(style)])
        line = []
        for g in right:
            _, c = M.generate(model, ids, torch.ones_like(ids), 16, guidance=g, top_k=0, temperature=0)
            got = c[0, 0].tolist()
            ok = all(x // 100 == s for x in got)
            right[g] += ok
            line.append(f"guidance {g:g}: {'ok ' if ok else 'BAD'} {got[:8]}")
        print(f"{style!r:13} (expect {s}xx)  " + "   ".join(line))
    print(f"style from the prompt alone: {right[1.0]}/{len(styles)} without guidance, {right[3.0]}/{len(styles)} with guidance 3")
    if not args.keep:
        import shutil
        shutil.rmtree(work, ignore_errors=True)
    if right[3.0] < len(styles) - 2:
        raise SystemExit("the LM did not learn the text conditioning")


if __name__ == "__main__":
    main()
