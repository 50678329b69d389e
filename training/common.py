"""Shared helpers of the training scripts: data set index, WAV segments, checkpoints, logging."""
from __future__ import annotations

import json
import math
import os
import struct
import sys
import time
from typing import Dict, List, Optional, Tuple

# One BLAS thread unless asked otherwise (set before numpy/torch load BLAS). Debian's torch links the
# system libblas.so.3: install libopenblas0-pthread, or matmuls run on the reference BLAS (~4x slower).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
for p in (HERE, os.path.join(HERE, "data")):
    if p not in sys.path:
        sys.path.insert(0, p)


def setup_threads(n: int) -> None:
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set


def load_index(data_dir: str) -> List[dict]:
    with open(os.path.join(data_dir, "captions.jsonl")) as f:
        entries = [json.loads(line) for line in f if line.strip()]
    if not entries:
        raise SystemExit(f"{data_dir}/captions.jsonl is empty")
    return entries


def split_index(entries: List[dict], valid_every: int = 50) -> Tuple[List[dict], List[dict]]:
    """Deterministic split: every `valid_every`-th clip (by index) is held out."""
    train = [e for e in entries if e["index"] % valid_every != valid_every - 1]
    valid = [e for e in entries if e["index"] % valid_every == valid_every - 1]
    return (train or entries), valid


_DATA_OFFSETS: Dict[str, tuple] = {}


def _wav_layout(path: str) -> tuple:
    got = _DATA_OFFSETS.get(path)
    if got:
        return got
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path}: not a WAV file")
        fmt = None
        while True:
            ck = f.read(8)
            if len(ck) < 8:
                raise ValueError(f"{path}: no data chunk")
            cid, size = ck[:4], struct.unpack("<I", ck[4:])[0]
            if cid == b"fmt ":
                fmt = struct.unpack("<HHIIHH", f.read(16))
                f.seek(size - 16, 1)
            elif cid == b"data":
                if fmt is None or fmt[0] != 1 or fmt[1] != 1 or fmt[5] != 16:
                    raise ValueError(f"{path}: expected mono 16-bit PCM")
                got = (f.tell(), size // 2, fmt[2])
                _DATA_OFFSETS[path] = got
                return got
            else:
                f.seek(size + (size & 1), 1)


def wav_frames(path: str) -> int:
    return _wav_layout(path)[1]


def read_wav_segment(path: str, start: int, length: int) -> np.ndarray:
    """float32 samples [start, start + length) of a mono 16-bit WAV (zero-padded past the end)."""
    off, n, _ = _wav_layout(path)
    with open(path, "rb") as f:
        f.seek(off + 2 * start)
        raw = f.read(2 * max(0, min(length, n - start)))
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if len(x) < length:
        x = np.concatenate([x, np.zeros(length - len(x), np.float32)])
    return x


def save_torch(path: str, obj: dict) -> None:
    tmp = path + ".partial"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


class Logger:
    def __init__(self, path: Optional[str]):
        self.f = open(path, "a") if path else None
        self.t0 = time.time()

    def log(self, **kv) -> None:
        kv = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in kv.items()}
        kv["elapsed_s"] = round(time.time() - self.t0, 1)
        print(" ".join(f"{k}={v}" for k, v in kv.items()), flush=True)
        if self.f:
            self.f.write(json.dumps(kv) + "\n")
            self.f.flush()


def resolve_run_args(ap, args, path: str, keep_current=("data", "run", "codec_run", "threads", "export", "encode_codes", "stop_at")):
    """Resumable runs: the first run stores its arguments in `path`; later runs reuse every stored value
    that is not given again on the command line (so `--steps 40000` alone extends a run with the same
    sizes and schedule knobs). Returns the merged arguments, stored back to `path`."""
    given = set()
    for a in ap._actions:
        for opt in a.option_strings:
            if any(x == opt or x.startswith(opt + "=") for x in sys.argv[1:]):
                given.add(a.dest)
    if os.path.exists(path):
        with open(path) as f:
            stored = json.load(f)
        for k, v in stored.items():
            if k not in given and k not in keep_current and hasattr(args, k) and getattr(args, k) != v:
                print(f"resume: --{k.replace('_', '-')} {v} (from {os.path.basename(path)})")
                setattr(args, k, v)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(vars(args), f, indent=2)
    return args
