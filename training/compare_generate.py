#!/usr/bin/python3
"""Loads a checkpoint directory with the PyTorch modules (as Hugging Face would), generates greedily with
classifier-free guidance, and compares the codes with those Riverrun wrote for the same prompt
(`riverrun generate --greedy --codes-out FILE`). Equal codes mean Riverrun's ONNX graphs compute what the
training code trained.

    /usr/bin/python3 training/compare_generate.py --model DIR --prompt TEXT --steps N --guidance G --codes FILE.json [--wav OUT.wav]
"""
import argparse
import json
import os
import sys
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402

import musicgen_hf as M  # noqa: E402
from text_tokenizer import CaptionTokenizer  # noqa: E402


def read_float_wav(path: str) -> np.ndarray:
    """Mono WAV, 32-bit float (format 3, as riverrun writes) or 16-bit PCM."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise SystemExit(f"{path}: not a WAV file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = (int.from_bytes(body[0:2], "little"), int.from_bytes(body[2:4], "little"), int.from_bytes(body[14:16], "little"))
        elif cid == b"data":
            if fmt is None or fmt[1] != 1:
                raise SystemExit(f"{path}: expected a mono WAV")
            if fmt[0] in (3, 0xFFFE) and fmt[2] == 32:
                return np.frombuffer(body, dtype="<f4").astype(np.float32)
            if fmt[0] == 1 and fmt[2] == 16:
                return np.frombuffer(body, dtype="<i2").astype(np.float32) / 32768.0
            raise SystemExit(f"{path}: unsupported WAV format {fmt}")
        pos += 8 + size + (size & 1)
    raise SystemExit(f"{path}: no data chunk")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--codes", required=True, help="codes JSON written by riverrun generate --codes-out")
    ap.add_argument("--min-match", type=float, default=1.0, help="fraction of codes that must be equal")
    ap.add_argument("--riverrun-wav", default=None, help="Riverrun's WAV for the same codes: compared with the PyTorch decode")
    ap.add_argument("--wav", default=None, help="write the PyTorch decode here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    model = M.MusicgenModel(cfg).eval()
    M.load_hf_weights(model, M.read_safetensors(os.path.join(args.model, "model.safetensors")))
    ids = CaptionTokenizer.from_file(os.path.join(args.model, "tokenizer.json")).encode(args.prompt)
    text = torch.tensor([ids])
    _, codes = M.generate(model, text, torch.ones_like(text), args.steps, guidance=args.guidance, top_k=0, temperature=0)
    ours = codes[0].T.numpy()  # [frames, K]
    with open(args.codes) as f:
        theirs = np.array(json.load(f)["codes"])
    if ours.shape != theirs.shape:
        raise SystemExit(f"shape {ours.shape} (PyTorch) != {theirs.shape} (Riverrun)")
    match = float((ours == theirs).mean())
    first = int(np.argmax((ours != theirs).any(1))) if match < 1 else None
    print(f"prompt {args.prompt!r} -> ids {ids}; {ours.shape[0]} frames x {ours.shape[1]} codebooks: "
          f"{100 * match:.1f}% of Riverrun's greedy codes equal PyTorch's" + (f" (first difference at frame {first})" if first is not None else ""))
    with torch.no_grad():
        y = model.audio_encoder.decode_codes(codes)[0, 0].numpy()
    if args.riverrun_wav and match == 1.0:
        r = read_float_wav(args.riverrun_wav)
        n = min(len(r), len(y))
        err = float(np.abs(r[:n] - y[:n]).max())
        print(f"audio: Riverrun's {len(r)} samples vs PyTorch's {len(y)}: max abs difference {err:.2e} (peak {float(np.abs(y).max()):.3f})")
        if len(r) != len(y) or err > 1e-3:
            raise SystemExit("Riverrun's audio differs from the PyTorch decode of the same codes")
    if args.wav:
        with wave.open(args.wav, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(cfg["audio_encoder"]["sampling_rate"])
            w.writeframes(np.clip(np.round(y * 32767), -32767, 32767).astype("<i2").tobytes())
    if match < args.min_match:
        raise SystemExit(f"only {100 * match:.1f}% equal (need {100 * args.min_match:.0f}%)")


if __name__ == "__main__":
    main()
