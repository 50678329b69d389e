#!/usr/bin/python3
"""Checks that text_tokenizer.CaptionTokenizer.encode gives exactly the ids of Riverrun's loader
(src/models/tokenizer.ts on @huggingface/tokenizers) for the demo tokenizer.json, on generated captions
and on hand-written edge cases (case, punctuation, digits, unknown words, non-ASCII, special tokens).

    /usr/bin/python3 training/check_tokenizer.py [--count 400]
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
sys.path.insert(0, os.path.join(HERE, "data"))
from generate import CAPTION_WORDS, make_caption, sample_params  # noqa: E402
from text_tokenizer import CaptionTokenizer, build_vocab, tokenizer_files  # noqa: E402

EDGE = [
    "", " ", "fast drums", "Fast  DRUMS", "  slow solo piano, 70 bpm, major, happy  ", "fast drums and bass, 140 bpm, minor, dark, electronic",
    "techno", "lofi hip-hop beat", "C# minor", "f#", "120bpm", "bpm120", "3/4 waltz", "piano...", "x", "zzzz qqq",
    "café music", "naïve piano", "Ｆａｓｔ drums", "ﬁne", "日本の音楽", "emoji 🎹 piano", "tab\tseparated\nlines", "non\u00a0breaking space",
    "with </s> inside", "<pad>", "<unk>piano", "a</s>b", "\u2581piano", "pi\u2581ano", "ok ok ok", "'quoted' \"double\"", "back\\slash",
    "日本 音楽", "<unk>日本", "日本<unk>音楽", "x日本y本z", "İstanbul", "STRASSE straße", "ｐｉａｎｏ", "under_score", "~tilde~", "a" * 50, "piano" * 5,
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=400)
    args = ap.parse_args()
    vocab = build_vocab(CAPTION_WORDS)
    tok = CaptionTokenizer(vocab)
    rng = random.Random(7)
    texts = list(EDGE)
    for i in range(args.count):
        texts.append(make_caption(sample_params(rng, 10.0), rng))
    words = CAPTION_WORDS + ["groovy", "lofi", "808", "symphonic", "trance"]
    for i in range(100):
        texts.append(" ".join(rng.choice(words) + rng.choice(["", "", ",", ".", "!"]) for _ in range(rng.randint(1, 8))))
    with tempfile.TemporaryDirectory() as d:
        for name, obj in tokenizer_files(vocab).items():
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                json.dump(obj, f, ensure_ascii=False)
        out = subprocess.run(["node", "--import", "tsx", os.path.join(HERE, "layout.ts"), "tokenize", os.path.join(d, "tokenizer.json")],
                             input=json.dumps(texts), capture_output=True, text=True, check=True, cwd=os.path.dirname(HERE)).stdout
    js = json.loads(out)
    bad = [(t, tok.encode(t), j) for t, j in zip(texts, js) if tok.encode(t) != j]
    for t, p, j in bad[:10]:
        print(f"MISMATCH {t!r}\n  python {p} {[tok.pieces[i] for i in p]}\n  loader {j}")
    if bad:
        raise SystemExit(f"{len(bad)} of {len(texts)} strings tokenize differently")
    unk = sum(1 for t in texts[len(EDGE):] if 2 in tok.encode(t))
    print(f"ok  {len(texts)} strings: Python ids == loader ids (vocabulary {len(vocab)} pieces, {len(CAPTION_WORDS)} words; "
          f"{unk} generated captions with <unk>)")
    print("example:", texts[len(EDGE)], "->", tok.pieces_of(texts[len(EDGE)]))


if __name__ == "__main__":
    main()
