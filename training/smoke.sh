#!/usr/bin/env bash
# Smoke test of the demo-model training pipeline (not part of npm test): generates 5 short clips, trains
# the codec and the LM a few steps each, exports a Hugging Face MusicGen checkpoint, checks its layout
# against the TypeScript writer, and generates audio from it with Riverrun's real loader.
#
#   bash training/smoke.sh [WORKDIR]          (default: a fresh temp dir, removed on success)
#
# Needs Debian's python3-torch, python3-numpy, fluidsynth and fluid-soundfont-gm (libopenblas0-pthread
# recommended: 4x faster matmuls), and node_modules (npm ci). Runs niced on one thread; takes 30-60 s
# on a shared 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c 'import torch, numpy' 2>/dev/null || { echo "smoke.sh: $PY cannot import torch/numpy: apt-get install -y python3-torch python3-numpy" >&2; exit 1; }
command -v fluidsynth >/dev/null || { echo "smoke.sh: fluidsynth missing: apt-get install -y fluidsynth fluid-soundfont-gm" >&2; exit 1; }

W=${1:-$(mktemp -d /tmp/riverrun-smoke.XXXXXX)}
keep=${1:+1}
mkdir -p "$W"
export RIVERRUN_CACHE="$W/cache"   # compiled ONNX graphs go here, not into ~/.cache
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
run() { echo "+ $*" >&2; nice -n ${SMOKE_NICE:-19} "$@"; }
t0=$(date +%s)
stamp() { echo "[smoke $(( $(date +%s) - t0 )) s] $*"; }

stamp "1/7 data: 5 clips of 4 s"
run "$PY" training/data/generate.py --out "$W/data" --count 5 --seed 0 --seconds 4 --batch 5

stamp "2/7 codec: 8 steps"
run "$PY" training/train_codec.py --data "$W/data" --run "$W/codec" --steps 8 --batch 4 --segment 0.5 \
  --filters 8 --hidden 32 --codebook-size 256 --log-every 4 --save-every 4 --warmup 2 --vq-start 4 --init-batches 2
stamp "    codec: resume to 10 steps"
run "$PY" training/train_codec.py --data "$W/data" --run "$W/codec" --steps 10   # other arguments come from codec_args.json
run "$PY" training/train_codec.py --data "$W/data" --run "$W/codec" --encode-codes
stamp "    codec: decoder-only fine-tune, 4 steps (encoder and codebooks frozen)"
run "$PY" training/train_codec.py --data "$W/data" --run "$W/codec-decoder" --init-from "$W/codec/codec.pt" --decoder-only --steps 4 \
  --batch 4 --segment 0.5 --log-every 2 --save-every 4 --warmup 1 --spec-floor 1e-2 --fft-sizes 1024,256
"$PY" - "$W/codec/codec.pt" "$W/codec-decoder/codec.pt" <<'PYEOF'
import sys, torch
a, b = (torch.load(p)["model"] for p in sys.argv[1:])
frozen = [k for k in a if not k.startswith("decoder.")]
assert all(torch.equal(a[k], b[k]) for k in frozen), "decoder-only fine-tune changed the encoder or codebooks"
assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("decoder.")), "decoder-only fine-tune left the decoder unchanged"
print(f"decoder-only: {len(frozen)} encoder/quantizer tensors unchanged, decoder trained")
PYEOF

stamp "3/7 LM: 12 steps"
run "$PY" training/train_lm.py --data "$W/data" --codec-run "$W/codec" --run "$W/lm" --steps 12 --batch 4 --frames 100 \
  --dim 64 --layers 2 --heads 4 --t5-dim 32 --t5-layers 2 --t5-heads 4 --max-positions 256 --log-every 4 --save-every 6 --warmup 4 --top-k 50

stamp "4/7 export (F16, codec from the decoder-only run)"
run "$PY" training/train_lm.py --data "$W/data" --codec-run "$W/codec-decoder" --run "$W/lm" --export "$W/checkpoint" --top-k 50 --dtype F16
ls -l "$W/checkpoint"
"$PY" - "$W/checkpoint/config.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
assert "riverrun_random" not in c, "riverrun_random must be absent"
assert c["_name_or_path"] == "riverrun/demo"
assert c["torch_dtype"] == "float16"
print("config.json: no riverrun_random, _name_or_path riverrun/demo, float16")
PYEOF

stamp "    continuation from the exported checkpoint (as from the shipped one): codec import, codes, 4 LM steps of prompt changes"
run "$PY" training/import_checkpoint.py --checkpoint "$W/checkpoint" --codec-run "$W/codec-v1"
run "$PY" training/train_codec.py --data "$W/data" --run "$W/codec-v1" --encode-codes
run "$PY" training/train_lm.py --data "$W/data" --codec-run "$W/codec-v1" --run "$W/lm-switch" --init-from "$W/checkpoint" --steps 4 \
  --batch 4 --frames 100 --warmup 1 --switch 1.0 --log-every 2 --save-every 4 --top-k 50
run "$PY" training/train_lm.py --data "$W/data" --codec-run "$W/codec-v1" --run "$W/lm-switch" --export "$W/checkpoint-v2" --top-k 50 --dtype F16
"$PY" - "$W/checkpoint" "$W/checkpoint-v2" <<'PYEOF'
import json, sys
sys.path.insert(0, "training")
import musicgen_hf as M
a, b = (M.read_safetensors(f"{d}/model.safetensors") for d in sys.argv[1:])
assert a.keys() == b.keys()
codec = [k for k in a if k.startswith("audio_encoder.")]
assert all((a[k] == b[k]).all() for k in codec), "the continuation changed the codec"
assert any((a[k] != b[k]).any() for k in a if k.startswith("decoder.")), "the continuation left the decoder unchanged"
steps = [json.load(open(f"{d}/config.json"))["riverrun_demo"]["lm_steps"] for d in sys.argv[1:]]
assert steps == [12, 16], steps
print(f"continuation: codec unchanged ({len(codec)} tensors), decoder trained, lm_steps {steps[0]} -> {steps[1]}")
PYEOF

stamp "5/7 layout: PyTorch state_dict == TypeScript tensorSpecs / random tiny checkpoint; math == HF reference fixture"
run "$PY" training/check_layout.py --config "$W/checkpoint/config.json"
stamp "    tokenizer: Python ids == Riverrun loader ids"
run "$PY" training/check_tokenizer.py --count 100

stamp "6/7 Riverrun loads the checkpoint and generates"
run ./bin/riverrun generate --model "$W/checkpoint" --prompt "fast drums" --seconds 2 --out "$W/x.wav" --threads 1
"$PY" - "$W/x.wav" <<'PYEOF'
import sys
sys.path.insert(0, "training")
from compare_generate import read_float_wav
x = read_float_wav(sys.argv[1])
assert len(x) == 2 * 32000, len(x)
print(f"{sys.argv[1]}: {len(x)} samples (2.00 s at 32 kHz), peak {abs(x).max():.3f}")
PYEOF

stamp "7/7 Riverrun's greedy codes == PyTorch's greedy codes for the same checkpoint"
run ./bin/riverrun generate --model "$W/checkpoint" --prompt "slow solo piano, 70 bpm, major" --steps 40 --greedy --guidance 3 \
  --out "$W/greedy.wav" --codes-out "$W/greedy.json" --threads 1
run "$PY" training/compare_generate.py --model "$W/checkpoint" --prompt "slow solo piano, 70 bpm, major" --steps 40 --guidance 3 \
  --codes "$W/greedy.json" --riverrun-wav "$W/greedy.wav" --min-match 0.95

stamp "smoke test passed"
if [ -z "$keep" ]; then rm -rf "$W"; else echo "outputs kept in $W"; fi
