#!/usr/bin/env bash
# The training run of the shipped demo model (models/riverrun-demo), sized for a 2-core CPU machine and
# about three and a half hours: data (2 shards in parallel), codec, codes, then the LM and a decoder-only
# fine-tune of the codec in parallel (the codes are fixed once the encoder is, so the decoder can keep
# improving while the LM trains on them), export as F16 (the first version of the checkpoint), then the
# LM continued from that checkpoint with prompt-change rows (train_lm.py --switch), export, model card
# measurements. docs/demo-model.md has the figures of the run that made the shipped checkpoint.
#
#   bash training/train_demo.sh [WORKDIR [CHECKPOINT_DIR]]      (defaults: training/work, models/riverrun-demo)
#
# Every stage resumes when run again. Needs Debian's python3-torch, python3-numpy, python3-matplotlib,
# fluidsynth, fluid-soundfont-gm, libopenblas0-pthread, and node_modules (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
W=${1:-training/work}
OUT=${2:-models/riverrun-demo}
LM_STEPS=${LM_STEPS:-1300}   # cosine schedule length; the shipped run stopped at step 1000 (--stop-at)
DECODER_STEPS=${DECODER_STEPS:-3500}
SWITCH_STEPS=${SWITCH_STEPS:-1000}
mkdir -p "$W"
t0=$(date +%s)
stamp() { echo "[train_demo $(( $(date +%s) - t0 )) s] $*"; }

stamp "1/5 data: 2048 clips of 12 s (6.8 h), two shards"
"$PY" training/data/generate.py --out "$W/data" --start 0 --count 1024 --seed 0 --seconds 12 --batch 32 > "$W/data0.log" &
"$PY" training/data/generate.py --out "$W/data" --start 1024 --count 1024 --seed 0 --seconds 12 --batch 32 > "$W/data1.log" &
wait

stamp "2/5 codec: 1750 steps of a 2600-step schedule, 2 threads; spectral-loss floor 1e-2 from step 1000"
CODEC=(--data "$W/data" --run "$W/codec" --steps 2600 --batch 8 --segment 1.0 --filters 8 --hidden 64 --codebook-size 512
  --lr 8e-4 --warmup 150 --vq-start 400 --init-batches 16 --log-every 50 --save-every 250 --threads 2)
"$PY" training/train_codec.py "${CODEC[@]}" --stop-at 1000
"$PY" training/train_codec.py "${CODEC[@]}" --stop-at 1750 --spec-floor 1e-2
[ -f "$W/codec/codes.npz" ] || "$PY" training/train_codec.py --data "$W/data" --run "$W/codec" --encode-codes --threads 2

stamp "3/5 LM (1000 steps of a $LM_STEPS-step schedule) and decoder-only codec fine-tune ($DECODER_STEPS steps) in parallel, 1 thread each"
"$PY" training/train_lm.py --data "$W/data" --codec-run "$W/codec" --run "$W/lm" --steps "$LM_STEPS" --batch 8 --frames 500 \
  --dim 192 --layers 4 --heads 4 --t5-dim 128 --t5-layers 2 --t5-heads 4 --max-positions 512 --lr 1.5e-3 --warmup 150 \
  --log-every 20 --save-every 200 --threads 1 --stop-at 1000 --switch 0 > "$W/lm.log" 2>&1 &
"$PY" training/train_codec.py --data "$W/data" --run "$W/codec-decoder" --init-from "$W/codec/codec.pt" --decoder-only \
  --steps "$DECODER_STEPS" --batch 8 --segment 1.0 --lr 4e-4 --warmup 100 --spec-floor 1e-2 --fft-sizes 4096,2048,1024,512,256 \
  --log-every 50 --save-every 250 --threads 1 > "$W/codec-decoder.log" 2>&1 &
wait

stamp "4/5 export $W/demo-v1 (F16), continue the LM from it with prompt changes ($SWITCH_STEPS steps), export $OUT"
# The continuation starts from the exported checkpoint, as anyone can from the shipped one: its codec
# re-imported (F16, the tokens the runtime decodes), the codes encoded again with it.
"$PY" training/train_lm.py --data "$W/data" --codec-run "$W/codec-decoder" --run "$W/lm" --export "$W/demo-v1" --dtype F16
[ -f "$W/codec-v1/codec.pt" ] || "$PY" training/import_checkpoint.py --checkpoint "$W/demo-v1" --codec-run "$W/codec-v1"
[ -f "$W/codec-v1/codes.npz" ] || "$PY" training/train_codec.py --data "$W/data" --run "$W/codec-v1" --encode-codes --threads 2
"$PY" training/train_lm.py --data "$W/data" --codec-run "$W/codec-v1" --run "$W/lm-switch" --init-from "$W/demo-v1" \
  --steps "$SWITCH_STEPS" --batch 8 --frames 500 --lr 8e-4 --warmup 50 --switch 0.4 --log-every 20 --save-every 100 --threads 1 > "$W/lm-switch.log" 2>&1
"$PY" training/train_lm.py --data "$W/data" --codec-run "$W/codec-v1" --run "$W/lm-switch" --export "$OUT" --dtype F16

stamp "5/5 measurements for docs/demo-model.md"
"$PY" training/eval_codec.py --data "$W/data" --codec-run "$W/codec-v1" --png docs/demo-model-codec.png | tee "$W/eval_codec.md"
node --import tsx training/render_steering.ts --model "$OUT" --out "$W/steering" --clips 20 --streams 10 --seconds 6 --threads 2
"$PY" training/eval_steering.py --clips "$W/steering" --data "$W/data" --out "$W/eval_steering.md"
stamp "done"
