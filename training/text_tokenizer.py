"""Caption tokenizer of the demo model: a T5-style SentencePiece Unigram vocabulary (word pieces for the
caption vocabulary, every printable ASCII character as a fallback) written as a Hugging Face
tokenizer.json, plus a pure-Python encoder that returns exactly the ids Riverrun's loader
(src/models/tokenizer.ts, i.e. @huggingface/tokenizers) produces for the same tokenizer.json.

The pipeline mirrored here (see node_modules/@huggingface/tokenizers/dist/tokenizers.mjs):
  1. split the raw text on the added (special) tokens <pad> </s> <unk>, which map to their ids;
  2. every other section: NFKC, lower-case, runs of 2+ spaces -> one space;
  3. WhitespaceSplit (JavaScript /\\S+/), then Metaspace: spaces -> U+2581, and U+2581 prepended to every
     word that does not already start with it;
  4. Unigram Viterbi over code points (ties keep the first candidate; a position without a one-character
     piece gets <unk> with score min_score - 10); consecutive <unk>s of a section are fused into one;
  5. </s> (id 1) appended.
`training/check_tokenizer.sh` compares this encoder with the real loader on a few hundred strings.
"""
from __future__ import annotations

import json
import re
import unicodedata
from typing import Dict, Iterable, List, Sequence, Tuple

META = "\u2581"
SPECIALS = ("<pad>", "</s>", "<unk>")
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2

# JavaScript's \s (ECMAScript WhiteSpace + LineTerminator), so that \S+ splits exactly like the loader.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_WORDS = re.compile("[^" + re.escape(_JS_SPACE) + "]+")
_MULTI_SPACE = re.compile(" {2,}")
_SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(s) for s in sorted(SPECIALS, key=len, reverse=True)) + ")")

WORD_SCORE0 = -3.0
CHAR_SCORE_PREFIXED = -8.5
CHAR_SCORE = -9.5


def build_vocab(words: Iterable[str]) -> List[Tuple[str, float]]:
    """[piece, score] for every id. Ids 0/1/2 = <pad>/</s>/<unk>; then U+2581, one piece per word
    (earlier words score higher), then every printable ASCII character with and without U+2581."""
    out: List[Tuple[str, float]] = [(s, 0.0) for s in SPECIALS]
    seen = set(SPECIALS)

    def add(piece: str, score: float) -> None:
        if piece not in seen:
            seen.add(piece)
            out.append((piece, score))

    add(META, -2.5)
    for i, w in enumerate(words):
        w = w.strip().lower()
        if not w or any(ch.isspace() for ch in w):
            raise ValueError(f"vocabulary words must be single lower-case words, got {w!r}")
        add(META + w, WORD_SCORE0 - i * 0.01)
    for c in range(0x21, 0x7F):
        add(META + chr(c), CHAR_SCORE_PREFIXED - (c - 0x21) * 1e-3)
    for c in range(0x21, 0x7F):
        add(chr(c), CHAR_SCORE - (c - 0x21) * 1e-3)
    return out


def tokenizer_files(vocab: Sequence[Tuple[str, float]]) -> Dict[str, dict]:
    """tokenizer.json, tokenizer_config.json and special_tokens_map.json (T5TokenizerFast layout, as
    src/models/presets.ts writes them, plus a Lowercase normalizer)."""
    added = [
        {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for i, s in enumerate(SPECIALS)
    ]
    metaspace = {"type": "Metaspace", "replacement": META, "prepend_scheme": "always", "split": True}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {
            "type": "Sequence",
            "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}],
        },
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": "</s>", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 0}},
                {"SpecialToken": {"id": "</s>", "type_id": 0}},
            ],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [EOS_ID], "tokens": ["</s>"]}},
        },
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": UNK_ID, "vocab": [[p, s] for p, s in vocab], "byte_fallback": False},
    }
    added_decoder = {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added}
    return {
        "tokenizer.json": tok,
        "tokenizer_config.json": {
            "added_tokens_decoder": added_decoder,
            "additional_special_tokens": [],
            "clean_up_tokenization_spaces": True,
            "eos_token": "</s>",
            "extra_ids": 0,
            "model_max_length": 512,
            "pad_token": "<pad>",
            "tokenizer_class": "T5Tokenizer",
            "unk_token": "<unk>",
        },
        "special_tokens_map.json": {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
    }


class CaptionTokenizer:
    def __init__(self, vocab: Sequence[Tuple[str, float]]):
        self.pieces = [p for p, _ in vocab]
        self.scores = [float(s) for _, s in vocab]
        self.ids = {p: i for i, p in enumerate(self.pieces)}
        self.unk_score = min(self.scores) - 10
        self.scores[UNK_ID] = self.unk_score
        self.max_len = max(len(p) for p in self.pieces)
        self.vocab_size = len(self.pieces)

    @classmethod
    def from_words(cls, words: Iterable[str]) -> "CaptionTokenizer":
        return cls(build_vocab(words))

    @classmethod
    def from_file(cls, path: str) -> "CaptionTokenizer":
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        return cls([(p, s) for p, s in j["model"]["vocab"]])

    def _unigram(self, word: str) -> List[int]:
        chars = list(word)
        n = len(chars)
        # Lattice nodes: (start, length, score, id); begin/end lists in insertion order like the loader.
        begin: List[List[int]] = [[] for _ in range(n + 1)]
        end: List[List[int]] = [[] for _ in range(n + 1)]
        nodes: List[Tuple[int, int, float, int]] = [(0, 0, 0.0, -1)]  # bos
        end[0].append(0)
        eos = len(nodes)
        nodes.append((n, 0, 0.0, -1))
        begin[n].append(eos)
        for pos in range(n):
            has_single = False
            for length in range(1, min(self.max_len, n - pos) + 1):
                piece = "".join(chars[pos : pos + length])
                pid = self.ids.get(piece)
                if pid is None:
                    continue
                begin[pos].append(len(nodes))
                end[pos + length].append(len(nodes))
                nodes.append((pos, length, self.scores[pid], pid))
                if length == 1:
                    has_single = True
            if not has_single:
                begin[pos].append(len(nodes))
                end[pos + 1].append(len(nodes))
                nodes.append((pos, 1, self.unk_score, UNK_ID))
        back = [0.0] * len(nodes)
        prev: List[int] = [-1] * len(nodes)
        for pos in range(n + 1):
            if not begin[pos]:
                return []
            for r in begin[pos]:
                best, best_score = -1, 0.0
                for l in end[pos]:
                    s = back[l] + nodes[r][2]
                    if best < 0 or s > best_score:
                        best, best_score = l, s
                if best < 0:
                    return []
                prev[r], back[r] = best, best_score
        out: List[int] = []
        node = prev[eos]
        while node > 0:
            out.append(nodes[node][3])
            node = prev[node]
        out.reverse()
        return out

    def encode(self, text: str) -> List[int]:
        """Token ids of `text`, ending with </s>, as Riverrun's loader returns them."""
        ids: List[int] = []
        for section in _SPECIAL_SPLIT.split(text):
            if not section:
                continue
            if section in SPECIALS:
                ids.append(SPECIALS.index(section))
                continue
            norm = _MULTI_SPACE.sub(" ", unicodedata.normalize("NFKC", section).lower())
            section_ids: List[int] = []
            for word in _JS_WORDS.findall(norm):
                w = word.replace(" ", META)
                if not w.startswith(META):
                    w = META + w
                section_ids.extend(self._unigram(w))
            # fuse_unk: runs of unknown characters within a section become one <unk>.
            fused: List[int] = []
            for i in section_ids:
                if not (i == UNK_ID and fused and fused[-1] == UNK_ID):
                    fused.append(i)
            ids.extend(fused)
        ids.append(EOS_ID)  # the TemplateProcessing post-processor always appends </s>
        return ids

    def pieces_of(self, text: str) -> List[str]:
        return [self.pieces[i] for i in self.encode(text)]
