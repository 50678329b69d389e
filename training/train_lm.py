#!/usr/bin/python3
"""Stage 2: train the T5 text encoder, enc_to_dec_proj and the MusicGen delay-pattern decoder on the
codec's tokens (RUN/codes.npz from `train_codec.py --encode-codes`) with captions.

Teacher forcing on the delayed sequence (column 0 = start token V, codebook k shifted right by k + 1,
pad V elsewhere; the loss skips pad targets), cross-entropy summed over the 4 codebooks' heads.
Caption dropout: with probability --cond-drop a row's text is replaced by the null condition that
classifier-free guidance uses at inference (all-zero encoder output, all-zero cross-attention mask), so
the model learns p(x) and p(x | text) together. Captions are re-drawn from the clip's parameters
(generate.make_caption) 35 % of the time, so every field is learnt on its own, and 25 % of the
time are one or two tags (generate.make_short_caption: "drums", "slow piano"), the prompts people type.

    /usr/bin/python3 training/train_lm.py --data DATA --codec-run CODEC_RUN --run LM_RUN [--steps 15000]
    /usr/bin/python3 training/train_lm.py --data DATA --codec-run CODEC_RUN --run LM_RUN --export CHECKPOINT_DIR

LM_RUN/model_config.json holds the full MusicGen config, LM_RUN/lm_args.json the arguments, LM_RUN/lm.pt
the latest state, LM_RUN/lm_log.jsonl the log: running the command again resumes (arguments not given
again come from lm_args.json).
--export writes a Hugging Face MusicGen checkpoint directory (codec weights from CODEC_RUN/codec.pt).
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
from import_checkpoint import read_checkpoint
from common import Logger, cosine_lr, resolve_run_args, load_index, save_torch, setup_threads, split_index
from generate import CAPTION_WORDS, make_caption, make_short_caption
from text_tokenizer import CaptionTokenizer, build_vocab


def model_config(args, codec_cfg: dict, vocab_size: int) -> dict:
    cfg = M.make_config(
        text_vocab=vocab_size, t5_d_model=args.t5_dim, t5_d_kv=args.t5_dim // args.t5_heads, t5_d_ff=2 * args.t5_dim,
        t5_layers=args.t5_layers, t5_heads=args.t5_heads, dec_hidden=args.dim, dec_layers=args.layers, dec_heads=args.heads,
        dec_ffn=4 * args.dim, max_positions=args.max_positions, codebook_size=codec_cfg["codebook_size"],
        codec_hidden=codec_cfg["hidden_size"], codec_filters=codec_cfg["num_filters"], codec_lstm_layers=codec_cfg["num_lstm_layers"],
    )
    cfg["audio_encoder"] = codec_cfg
    return cfg


def with_unknown_words(text: str, rng: random.Random) -> str:
    """The caption with one or two made-up words inserted. Words outside the caption vocabulary are
    spelled with the tokenizer's fallback characters, which captions never contain: without this, any
    such word in a user's prompt ("lofi beats with rain") would give an untrained, arbitrary condition;
    with it, the model learns to ignore them."""
    words = text.split(" ")
    for _ in range(rng.choice([1, 1, 2])):
        junk = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz'-!?.") for _ in range(rng.randint(2, 9)))
        words.insert(rng.randint(0, len(words)), junk)
    return " ".join(words)


class Batches:
    def __init__(self, entries, codes: np.ndarray, index: np.ndarray, tok: CaptionTokenizer, frames: int, V: int, seed: int,
                 unknown_words: float = 0.0, switch: float = 0.0):
        pos = {int(i): n for n, i in enumerate(index)}
        self.items = [(e, pos[e["index"]]) for e in entries if e["index"] in pos]
        if not self.items:
            raise SystemExit("no clip of the index has codes")
        self.codes, self.tok, self.frames, self.V = codes, tok, frames, V
        self.rng = random.Random(seed)
        self.unknown_words = unknown_words
        self.switch = switch

    def crop(self, n: int, length: int) -> torch.Tensor:
        T = self.codes.shape[-1]
        start = self.rng.randrange(T - length + 1) if length < T else 0
        return torch.from_numpy(self.codes[n, :, start : start + length].astype(np.int64))

    def caption(self, e: dict) -> str:
        rng = self.rng
        r = rng.random()
        text = e["caption"] if r < 0.4 else make_caption(e["params"], rng) if r < 0.75 else make_short_caption(e["params"], rng)
        return with_unknown_words(text, rng) if rng.random() < self.unknown_words else text

    def batch(self, size: int, cond_drop: float):
        """(text ids, text mask, delayed codes, delayed mask of the scored positions).

        A share `switch` of the captioned rows are prompt changes: frames of clip A, then from a random
        frame s on frames of another clip B, with B's caption, scored only from s on. That is the
        situation of a prompt change mid-stream: the context says A, the caption says B. Trained only
        on single clips, the model learns that the context predicts everything the caption does and
        ignores a new caption (measured: no audible change after a mid-stream switch); on these rows
        only the caption can predict what comes after s."""
        rng = self.rng
        texts, seqs, scored, drop = [], [], [], []
        for _ in range(size):
            e, n = self.items[rng.randrange(len(self.items))]
            drop.append(rng.random() < cond_drop)
            keep = torch.ones(self.frames, dtype=torch.bool)
            if not drop[-1] and rng.random() < self.switch:
                s = rng.randint(self.frames // 5, self.frames * 4 // 5)
                e_b, n_b = self.items[rng.randrange(len(self.items))]
                seqs.append(torch.cat([self.crop(n, s), self.crop(n_b, self.frames - s)], 1))
                keep[:s] = False
                e = e_b
            else:
                seqs.append(self.crop(n, self.frames))
            scored.append(keep)
            texts.append(self.caption(e))
        ids = [self.tok.encode(t) for t in texts]
        L = max(len(i) for i in ids)
        text = torch.zeros(size, L, dtype=torch.long)
        mask = torch.zeros(size, L, dtype=torch.long)
        for b, i in enumerate(ids):
            text[b, : len(i)] = torch.tensor(i)
            mask[b, : len(i)] = 0 if drop[b] else 1
        K = self.codes.shape[1]
        scored_delayed = M.delay_codes(torch.stack(scored)[:, None].expand(size, K, self.frames).long(), 0).bool()
        return text, mask, M.delay_codes(torch.stack(seqs), self.V), scored_delayed


def lm_loss(model: M.MusicgenModel, text, mask, seq, scored, V: int):
    """Teacher-forced cross-entropy: logits at position t predict column t + 1 of every codebook, scored
    where `scored` (Batches.batch) is true and the target is not padding."""
    inp, tgt = seq[:, :, :-1], seq[:, :, 1:]
    h = model.decoder.model.decoder(inp, model.encode_text(text, mask), mask)  # [B, T, d]
    valid = (tgt != V) & scored[:, :, 1:]
    per_cb = []
    # Each head only on the positions it is scored at: no [B, K, T, V] tensor (its slicing backward
    # zero-fills and adds full-size gradients, which took half of the step time).
    for k, head in enumerate(model.decoder.lm_heads):
        vk = valid[:, k]
        per_cb.append(F.cross_entropy(head(h[vk]), tgt[:, k][vk]))
    return torch.stack(per_cb).mean(), per_cb


def lm_parameters(model: M.MusicgenModel):
    return [p for n, p in model.named_parameters() if not n.startswith("audio_encoder.")]


def load_codec(model: M.MusicgenModel, codec_run: str) -> None:
    st = torch.load(os.path.join(codec_run, "codec.pt"))
    model.audio_encoder.load_state_dict(st["model"])


def lm_state(model: M.MusicgenModel) -> dict:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("audio_encoder.")}


def train(args) -> None:
    setup_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.run, exist_ok=True)
    vocab = build_vocab(CAPTION_WORDS)
    tok = CaptionTokenizer(vocab)
    with open(os.path.join(args.codec_run, "codec_config.json")) as f:
        codec_cfg = json.load(f)
    cfg_path = os.path.join(args.run, "model_config.json")
    ckpt_path = os.path.join(args.run, "lm.pt")
    start_from, init_steps = None, 0
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            cfg = json.load(f)
    else:
        if args.init_from:
            ck_cfg, start_from = read_checkpoint(args.init_from)
            init_steps = ck_cfg.get("riverrun_demo", {}).get("lm_steps", 0)
            cfg = {k: v for k, v in ck_cfg.items() if k not in ("riverrun_demo", "torch_dtype")}
            if cfg["audio_encoder"] != codec_cfg:
                raise SystemExit(f"{args.init_from} has another codec than {args.codec_run}: its tokens would not be the ones the decoder knows")
        else:
            cfg = model_config(args, codec_cfg, len(vocab))
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=2)
    if cfg["text_encoder"]["vocab_size"] != len(vocab):
        raise SystemExit("the caption vocabulary changed since this run started")
    V = cfg["decoder"]["vocab_size"]
    model = M.MusicgenModel(cfg)
    params = lm_parameters(model)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95))
    step = 0
    if start_from is not None and not os.path.exists(ckpt_path):
        model.load_state_dict(lm_state(start_from), strict=False)
        print(f"initialised from {args.init_from}")
    if os.path.exists(ckpt_path):
        st = torch.load(ckpt_path)
        model.load_state_dict(st["model"], strict=False)
        opt.load_state_dict(st["opt"])
        step = st["step"]
        init_steps = st.get("init_steps", 0)
        print(f"resumed {ckpt_path} at step {step}")
    data = np.load(os.path.join(args.codec_run, "codes.npz"))
    codes, index = data["codes"], data["index"]
    T = codes.shape[-1]
    frames = min(args.frames or T, T)
    if frames + cfg["decoder"]["num_codebooks"] > cfg["decoder"]["max_position_embeddings"]:
        raise SystemExit(f"{frames} frames + delay do not fit max_position_embeddings {cfg['decoder']['max_position_embeddings']}")
    entries = load_index(args.data)
    train_e, valid_e = split_index(entries)
    batches = Batches(train_e, codes, index, tok, frames, V, args.seed * 1000 + step, args.unknown_words, args.switch)
    valid = Batches(valid_e, codes, index, tok, frames, V, 12345) if valid_e else None
    valid_switch = Batches(valid_e, codes, index, tok, frames, V, 54321, switch=1.0) if valid_e else None
    log = Logger(os.path.join(args.run, "lm_log.jsonl"))
    n_params = sum(p.numel() for p in params)
    print(f"lm: {n_params / 1e6:.2f} M parameters (text encoder + projection + decoder), {len(batches.items)} train clips, "
          f"batch {args.batch} x {frames} frames, caption dropout {args.cond_drop}, prompt changes {args.switch}")
    if valid is not None and step == 0:  # the starting point (of a continuation: what it improves on)
        log.log(stage="lm-valid", step=step, **evaluate(model, valid, V), **evaluate(model, valid_switch, V, "switch_"))
    model.train()
    t_last, s_last = time.time(), step
    end = min(args.steps, args.stop_at or args.steps)
    while step < end:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, args.steps, args.lr, args.warmup)
        text, mask, seq, scored = batches.batch(args.batch, args.cond_drop)
        loss, per_cb = lm_loss(model, text, mask, seq, scored, V)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0 or step == end:
            now = time.time()
            log.log(stage="lm", step=step, loss=float(loss), per_codebook=[round(float(x), 3) for x in per_cb],
                    lr=opt.param_groups[0]["lr"], steps_per_s=(step - s_last) / (now - t_last))
            t_last, s_last = now, step
        if step % args.save_every == 0 or step == end:
            save_torch(ckpt_path, {"model": lm_state(model), "opt": opt.state_dict(), "step": step, "init_steps": init_steps, "config": cfg})
            if valid is not None:
                log.log(stage="lm-valid", step=step, **evaluate(model, valid, V), **evaluate(model, valid_switch, V, "switch_"))


@torch.no_grad()
def evaluate(model: M.MusicgenModel, valid: Batches, V: int, prefix: str = "") -> dict:
    """Held-out loss with the caption and with the null condition: their gap is what guidance uses.
    The same batch every time (16 rows); on prompt-change rows (prefix "switch_") only after the change."""
    model.eval()
    saved = valid.rng.getstate()
    text, mask, seq, scored = valid.batch(16, 0.0)
    valid.rng.setstate(saved)
    cond, _ = lm_loss(model, text, mask, seq, scored, V)
    uncond, _ = lm_loss(model, text, torch.zeros_like(mask), seq, scored, V)
    model.train()
    return {f"{prefix}valid_loss": float(cond), f"{prefix}valid_loss_null_text": float(uncond)}


def export(args) -> None:
    with open(os.path.join(args.run, "model_config.json")) as f:
        cfg = json.load(f)
    model = M.MusicgenModel(cfg)
    st = torch.load(os.path.join(args.run, "lm.pt"))
    missing, unexpected = model.load_state_dict(st["model"], strict=False)
    if unexpected or any(not k.startswith("audio_encoder.") for k in missing):
        raise SystemExit(f"lm.pt does not match model_config.json: missing {missing[:5]}, unexpected {unexpected[:5]}")
    load_codec(model, args.codec_run)
    vocab = build_vocab(CAPTION_WORDS)
    gen = M.make_generation_config(cfg, top_k=args.top_k, guidance=args.guidance)
    M.save_checkpoint(args.export, model, vocab, gen, dtype=args.dtype,
                      extra_config={"riverrun_demo": {"lm_steps": st.get("init_steps", 0) + st["step"], "codec_steps": torch.load(os.path.join(args.codec_run, "codec.pt"))["step"]}})
    print(f"exported {args.export} (lm step {st.get('init_steps', 0) + st['step']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--codec-run", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--steps", type=int, default=15000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frames", type=int, default=500, help="frames per example, a random crop of the clip (0 = whole clips)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--cond-drop", type=float, default=0.15)
    ap.add_argument("--switch", type=float, default=0.3, help="share of captioned rows that are prompt changes (see Batches.batch)")
    ap.add_argument("--init-from", default=None, help="a checkpoint directory (e.g. models/riverrun-demo) whose text encoder and decoder "
                    "a new run starts from, with its architecture and a fresh optimizer and schedule")
    ap.add_argument("--unknown-words", type=float, default=0.15, help="share of captions with made-up words inserted (see with_unknown_words)")
    ap.add_argument("--dim", type=int, default=256, help="decoder hidden size")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--t5-dim", type=int, default=128)
    ap.add_argument("--t5-layers", type=int, default=2)
    ap.add_argument("--t5-heads", type=int, default=4)
    ap.add_argument("--max-positions", type=int, default=512)
    ap.add_argument("--stop-at", type=int, default=0, help="end at this step without changing the --steps schedule (time-boxed runs)")
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export", default=None, help="write a Hugging Face MusicGen checkpoint here instead of training")
    ap.add_argument("--top-k", type=int, default=250)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--dtype", choices=["F32", "F16"], default="F32", help="weights in model.safetensors (F16: half the size)")
    args = ap.parse_args()
    if args.export:
        export(args)
    else:
        train(resolve_run_args(ap, args, os.path.join(args.run, "lm_args.json")))


if __name__ == "__main__":
    main()
