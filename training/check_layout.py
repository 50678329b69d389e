#!/usr/bin/python3
"""Checks that training/musicgen_hf.py is the Hugging Face MusicGen layout and math Riverrun loads.

  1. layout vs the TypeScript writer: for the random `tiny` preset written by src/models/presets.ts
     (writeRandomCheckpoint) and for the given demo configs (tensorSpecs(config)), the key names and
     shapes of MusicgenModel.state_dict() equal the TypeScript ones; the tiny checkpoint loads strictly;
  2. math vs the reference fixture (/work/shared/fixtures/musicgen-tiny, outputs of Hugging Face
     transformers): T5, projection, decoder logits, EnCodec encode/decode, and greedy CFG generation.

    /usr/bin/python3 training/check_layout.py [--config CONFIG.json ...]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

import musicgen_hf as M  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = "/work/shared/fixtures/musicgen-tiny"


def ts(*args: str) -> str:
    return subprocess.run(["node", "--import", "tsx", os.path.join(ROOT, "training", "layout.ts"), *args], check=True, cwd=ROOT, capture_output=True, text=True).stdout


def compare_shapes(ours: dict, theirs: dict, what: str) -> None:
    a, b = set(ours), set(theirs)
    if a != b:
        raise SystemExit(f"{what}: key sets differ\n  only in PyTorch: {sorted(a - b)[:20]}\n  only in TypeScript: {sorted(b - a)[:20]}")
    bad = [(k, ours[k], theirs[k]) for k in sorted(a) if list(ours[k]) != list(theirs[k])]
    if bad:
        raise SystemExit(f"{what}: shapes differ: {bad[:10]}")
    print(f"ok  {what}: {len(a)} tensors, same names and shapes")


def check_config(path: str) -> None:
    with open(path) as f:
        cfg = json.load(f)
    model = M.MusicgenModel(cfg)
    ours = {k: list(v.shape) for k, v in M.hf_state_dict(model).items()}
    theirs = {n: s for n, s in json.loads(ts("specs", path))}
    compare_shapes(ours, theirs, f"tensorSpecs({path})")


def check_random_tiny() -> None:
    with tempfile.TemporaryDirectory() as d:
        ts("random-tiny", d)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        model = M.MusicgenModel(cfg)
        ours = {k: list(v.shape) for k, v in M.hf_state_dict(model).items()}
        compare_shapes(ours, M.safetensors_shapes(os.path.join(d, "model.safetensors")), "TypeScript random tiny checkpoint")
        M.load_hf_weights(model, M.read_safetensors(os.path.join(d, "model.safetensors")))
        print("ok  the TypeScript random tiny checkpoint loads strictly into MusicgenModel")


def close(name: str, got: torch.Tensor, want: np.ndarray, tol: float = 1e-4) -> None:
    g = got.detach().numpy().astype(np.float64)
    w = want.astype(np.float64)
    if g.shape != w.shape:
        raise SystemExit(f"{name}: shape {g.shape} != {w.shape}")
    err = float(np.abs(g - w).max()) if g.size else 0.0
    if not err <= tol:
        raise SystemExit(f"{name}: max abs error {err:.3g} > {tol}")
    print(f"ok  {name}: max abs error {err:.2e}")


def equal(name: str, got: torch.Tensor, want: np.ndarray) -> None:
    g = got.detach().numpy()
    if g.shape != want.shape or not np.array_equal(g, want):
        raise SystemExit(f"{name}: differs ({int((g != want).sum()) if g.shape == want.shape else 'shape'} mismatches)")
    print(f"ok  {name}: identical")


def check_reference() -> None:
    with open(os.path.join(FIXTURE, "config.json")) as f:
        cfg = json.load(f)
    model = M.MusicgenModel(cfg).eval()
    W = M.read_safetensors(os.path.join(FIXTURE, "model.safetensors"))
    compare_shapes({k: list(v.shape) for k, v in M.hf_state_dict(model).items()}, {k: list(v.shape) for k, v in W.items()}, "reference fixture checkpoint")
    M.load_hf_weights(model, W)
    R = {k: torch.from_numpy(v) for k, v in M.read_safetensors(os.path.join(FIXTURE, "reference.safetensors")).items()}
    Rn = M.read_safetensors(os.path.join(FIXTURE, "reference.safetensors"))
    with torch.no_grad():
        h = model.text_encoder(R["t5.input_ids"], R["t5.attention_mask"])
        close("t5.last_hidden_state", h, Rn["t5.last_hidden_state"])
        close("t5.projected_hidden_state", model.enc_to_dec_proj(h), Rn["t5.projected_hidden_state"])
        close("t5.decoder_encoder_hidden_states", model.encode_text(R["t5.input_ids"], R["t5.attention_mask"]), Rn["t5.decoder_encoder_hidden_states"])
        close("t5_long.last_hidden_state", model.text_encoder(R["t5_long.input_ids"], torch.ones_like(R["t5_long.input_ids"])), Rn["t5_long.last_hidden_state"])
        pos = torch.arange(40)
        equal("t5_long.relative_position_bucket", M.t5_relative_bucket(pos[None, :] - pos[:, None]), Rn["t5_long.relative_position_bucket"])
        ids = R["decoder.input_ids"].view(2, 4, 10)
        logits = model.decoder(ids, R["decoder.encoder_hidden_states"], R["decoder.encoder_attention_mask"])
        close("decoder.logits", logits.reshape(8, 10, -1), Rn["decoder.logits"])
        codec = model.audio_encoder
        codes = R["encodec_decode.audio_codes"][0]
        close("encodec_decode.quantized_embeddings", codec.quantizer.decode(codes), Rn["encodec_decode.quantized_embeddings"])
        close("encodec_decode.audio_values", codec.decode_codes(codes), Rn["encodec_decode.audio_values"])
        x = R["encodec_encode.input_values"]
        close("encodec_encode.embeddings", codec.encoder(x), Rn["encodec_encode.embeddings"])
        enc_codes = codec.encode_codes(x)
        equal("encodec_encode.audio_codes", enc_codes[None], Rn["encodec_encode.audio_codes"])
        close("encodec_encode.reconstruction", codec.decode_codes(enc_codes), Rn["encodec_encode.reconstruction"])
        seq, codes, steps = M.generate(model, R["generate.input_ids"], R["generate.attention_mask"], 20, guidance=3.0, top_k=0, temperature=0, return_steps=True)
        close("generate.step_cfg_scores", steps, Rn["generate.step_cfg_scores"], 5e-4)
        equal("generate.sequences", seq, Rn["generate.sequences"])
        equal("generate.audio_codes", codes[None], Rn["generate.audio_codes"])
        close("generate.audio_values", codec.decode_codes(codes), Rn["generate.audio_values"])
        # Teacher forcing with delay_codes gives the generation's inputs: the training layout.
        delayed = M.delay_codes(codes, cfg["decoder"]["vocab_size"])
        equal("delay_codes(generate.audio_codes) == generate.sequences", delayed[0], Rn["generate.sequences"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", action="append", default=[], help="also compare tensorSpecs for this config.json")
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    check_random_tiny()
    for c in args.config:
        check_config(c)
    if not args.skip_reference:
        check_reference()
    print("layout checks passed")


if __name__ == "__main__":
    main()
