#!/usr/bin/python3
"""Turns the codec of a Hugging Face MusicGen checkpoint directory (e.g. the shipped models/riverrun-demo)
back into a codec run of train_codec.py: RUN/codec_config.json and RUN/codec.pt (weights only, no
optimizer state). With it, the shipped model can be trained further without the run that made it:

    /usr/bin/python3 training/import_checkpoint.py --checkpoint models/riverrun-demo --codec-run RUN
    /usr/bin/python3 training/train_codec.py --data DATA --run RUN --encode-codes        (the LM's tokens)
    /usr/bin/python3 training/train_codec.py ... --init-from RUN/codec.pt --decoder-only  (a fine-tune)
    /usr/bin/python3 training/train_lm.py ... --codec-run RUN --init-from models/riverrun-demo

F16 weights are widened to F32 exactly; the codes the imported encoder gives are those of the shipped
codec as the runtime has it.
"""
from __future__ import annotations

import argparse
import json
import os

import common  # noqa: F401  (sets sys.path)

import musicgen_hf as M
from common import save_torch


def read_checkpoint(checkpoint: str):
    """(config.json, MusicgenModel with every tensor of model.safetensors loaded)."""
    with open(os.path.join(checkpoint, "config.json")) as f:
        cfg = json.load(f)
    model = M.MusicgenModel(cfg)
    M.load_hf_weights(model, M.read_safetensors(os.path.join(checkpoint, "model.safetensors")))
    return cfg, model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a Hugging Face MusicGen checkpoint directory")
    ap.add_argument("--codec-run", required=True, help="the codec run directory to write")
    args = ap.parse_args()
    cfg, model = read_checkpoint(args.checkpoint)
    os.makedirs(args.codec_run, exist_ok=True)
    if os.path.exists(os.path.join(args.codec_run, "codec.pt")):
        raise SystemExit(f"{args.codec_run}/codec.pt exists; import into a new directory")
    with open(os.path.join(args.codec_run, "codec_config.json"), "w") as f:
        json.dump(cfg["audio_encoder"], f, indent=2)
    step = cfg.get("riverrun_demo", {}).get("codec_steps", 0)
    save_torch(os.path.join(args.codec_run, "codec.pt"), {"model": model.audio_encoder.state_dict(), "step": step, "config": cfg["audio_encoder"]})
    print(f"imported the codec of {args.checkpoint} (step {step}) -> {args.codec_run}")


if __name__ == "__main__":
    main()
