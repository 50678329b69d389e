#!/usr/bin/python3
"""Procedural music data set for the Riverrun demo model.

Every clip is composed from its parameters (style, key, mode, tempo, instruments, drum pattern), written
as a Standard MIDI File by the tiny writer below, rendered to audio by fluidsynth with the General MIDI
soundfont (Debian: fluidsynth, fluid-soundfont-gm), mixed to mono 32 kHz 16-bit WAV and loudness
normalised. A caption is built from the parameters.

Clip i depends only on (--seed, i, --seconds, --batch): the data set is reproducible, can be generated in
shards (--start/--count, e.g. one process per core) and extended later without changing earlier clips.
Clips are rendered back to back by one fluidsynth process per aligned group of --batch clips (loading the
soundfont costs ~1 s); fluidsynth keeps a little state across clips (differences up to -30 dB in a
clip's first second), which is why the group, not only the clip, is fixed.

    /usr/bin/python3 training/data/generate.py --out training/work/data --count 4000 --seed 0 [--seconds 12 --batch 32]

Output: OUT/clips/NNNNNN.wav, OUT/captions.jsonl ({"file", "caption", "params"} per line, sorted by
index), OUT/vocab.json (the caption vocabulary, see CAPTION_WORDS).
"""
from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import wave
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

SAMPLE_RATE = 32000
SOUNDFONT_CANDIDATES = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
# Every clip is written at a constant 120 bpm with 500 ticks per quarter note, i.e. 1 tick = 1 ms: the
# composer converts its beats to milliseconds itself, so that many clips of different tempi can be
# rendered back to back by one fluidsynth process (loading the 148 MB soundfont dominates otherwise).
TPQ = 500
MIDI_TEMPO_US = 500_000

# ------------------------------------------------------------------------------------------------
# Standard MIDI File writer (format 1)


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


class Track:
    def __init__(self) -> None:
        self.events: List[Tuple[int, int, bytes]] = []  # (tick, order, bytes)

    def add(self, tick: int, data: bytes, order: int = 1) -> None:
        self.events.append((max(0, int(tick)), order, data))

    def note(self, ch: int, start: int, dur: int, pitch: int, vel: int) -> None:
        pitch = max(0, min(127, int(pitch)))
        vel = max(1, min(127, int(vel)))
        self.add(start, bytes([0x90 | ch, pitch, vel]), 2)
        self.add(start + max(1, int(dur)), bytes([0x80 | ch, pitch, 0]), 0)  # note-offs first at a tick

    def encode(self) -> bytes:
        body = bytearray()
        last = 0
        for tick, _, data in sorted(self.events, key=lambda e: (e[0], e[1])):
            body += _vlq(tick - last) + data
            last = tick
        body += b"\x00\xff\x2f\x00"
        return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


def write_midi(path: str, tracks: Sequence[Track]) -> None:
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), TPQ))
        for t in tracks:
            f.write(t.encode())


# ------------------------------------------------------------------------------------------------
# Vocabulary of the music

# name in captions -> (GM program, lowest, highest comfortable MIDI pitch)
INSTRUMENTS: Dict[str, Tuple[int, int, int]] = {
    "piano": (0, 36, 88),
    "electric piano": (4, 40, 84),
    "organ": (16, 40, 84),
    "vibraphone": (11, 53, 89),
    "marimba": (12, 48, 84),
    "glockenspiel": (9, 72, 96),
    "harp": (46, 36, 91),
    "acoustic guitar": (25, 40, 79),
    "electric guitar": (27, 40, 81),
    "distorted guitar": (30, 40, 76),
    "acoustic bass": (32, 28, 55),
    "electric bass": (33, 28, 55),
    "synth bass": (38, 28, 55),
    "cello": (42, 36, 64),
    "violin": (40, 55, 91),
    "strings": (48, 43, 84),
    "choir": (52, 48, 76),
    "trumpet": (56, 55, 82),
    "brass": (61, 48, 77),
    "saxophone": (65, 49, 80),
    "clarinet": (71, 50, 86),
    "flute": (73, 60, 93),
    "harmonica": (22, 60, 84),
    "synth lead": (81, 48, 84),
    "synth pad": (89, 43, 79),
}

# style -> roles; instrument lists are the choices, patterns the accompaniment figures.
STYLES: Dict[str, dict] = {
    "electronic": dict(bpm=(118, 145), drums=0.92, kit=["four", "four_open"], swing=0.0,
                       lead=["synth lead", "glockenspiel", "electric piano"], harmony=["synth pad", "electric piano", "synth lead"],
                       harmony_pattern=["arp16", "pad", "stabs"], bass=["synth bass"], bass_p=1.0, bass_pattern=["octave8", "offbeat8", "root8"],
                       density=["dense", "medium"], minor_p=0.6),
    "rock": dict(bpm=(96, 160), drums=0.95, kit=["rock"], swing=0.0,
                 lead=["distorted guitar", "electric guitar", "organ"], harmony=["distorted guitar", "electric guitar"],
                 harmony_pattern=["power8"], bass=["electric bass"], bass_p=1.0, bass_pattern=["root8"],
                 density=["medium", "dense"], minor_p=0.5),
    "jazz": dict(bpm=(80, 150), drums=0.85, kit=["swing"], swing=1.0,
                 lead=["saxophone", "trumpet", "vibraphone", "clarinet"], harmony=["piano", "electric piano", "vibraphone"],
                 harmony_pattern=["comp"], bass=["acoustic bass"], bass_p=1.0, bass_pattern=["walking"],
                 density=["medium", "dense"], minor_p=0.5, sevenths=True),
    "ambient": dict(bpm=(60, 84), drums=0.0, kit=[], swing=0.0,
                    lead=["flute", "glockenspiel", "choir", "harp"], harmony=["synth pad", "strings", "choir"],
                    harmony_pattern=["pad"], bass=["cello", "synth bass"], bass_p=0.4, bass_pattern=["whole"],
                    density=["sparse"], minor_p=0.5, reverb=110),
    "classical": dict(bpm=(62, 130), drums=0.0, kit=[], swing=0.0,
                      lead=["violin", "flute", "clarinet", "piano"], harmony=["piano", "strings", "harp"],
                      harmony_pattern=["alberti", "arp8", "pad"], bass=["cello"], bass_p=0.6, bass_pattern=["whole", "half"],
                      density=["medium", "sparse"], minor_p=0.5, solo_piano_p=0.35),
    "hip hop": dict(bpm=(78, 98), drums=1.0, kit=["boombap"], swing=0.5,
                    lead=["electric piano", "piano", "flute", "vibraphone"], harmony=["electric piano", "piano", "synth pad"],
                    harmony_pattern=["stabs", "pad"], bass=["synth bass", "electric bass"], bass_p=1.0, bass_pattern=["hiphop"],
                    density=["sparse", "medium"], minor_p=0.7),
    "folk": dict(bpm=(84, 132), drums=0.45, kit=["folk"], swing=0.0,
                 lead=["violin", "flute", "harmonica", "clarinet"], harmony=["acoustic guitar"],
                 harmony_pattern=["strum8"], bass=["acoustic bass"], bass_p=0.7, bass_pattern=["root_fifth"],
                 density=["medium"], minor_p=0.4),
    "pop": dict(bpm=(90, 128), drums=0.9, kit=["pop"], swing=0.0,
                lead=["piano", "synth lead", "electric guitar", "trumpet"], harmony=["piano", "electric piano", "strings", "acoustic guitar"],
                harmony_pattern=["block4", "arp8", "strum8"], bass=["electric bass", "synth bass"], bass_p=1.0, bass_pattern=["root_fifth", "root8"],
                density=["medium"], minor_p=0.4),
}

KEYS = ["c", "c#", "d", "eb", "e", "f", "f#", "g", "ab", "a", "bb", "b"]
MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]
PROGRESSIONS = {
    "major": [[0, 4, 5, 3], [0, 3, 4, 3], [0, 5, 3, 4], [1, 4, 0, 0], [0, 3, 0, 4], [5, 3, 0, 4]],
    "minor": [[0, 5, 2, 6], [0, 3, 4, 0], [0, 6, 5, 6], [0, 3, 6, 2], [0, 5, 3, 4], [0, 3, 0, 4]],
}
MOODS = {
    ("major", "fast"): ["happy", "upbeat", "energetic", "bright", "cheerful"],
    ("major", "moderate"): ["happy", "bright", "warm", "hopeful", "cheerful"],
    ("major", "slow"): ["calm", "peaceful", "warm", "gentle", "hopeful"],
    ("minor", "fast"): ["dark", "tense", "intense", "aggressive", "driving"],
    ("minor", "moderate"): ["dark", "moody", "mysterious", "melancholic", "sad"],
    ("minor", "slow"): ["sad", "melancholic", "dark", "mysterious", "somber"],
}
# Synonyms used in captions (the canonical name first, chosen most of the time), so that common prompt
# words are in the vocabulary and trained.
STYLE_SYNONYMS = {
    "electronic": ["electronic", "edm", "techno", "dance", "synthwave"],
    "rock": ["rock", "hard rock", "indie rock"],
    "jazz": ["jazz", "jazzy", "swing", "bebop"],
    "ambient": ["ambient", "atmospheric", "drone", "meditation"],
    "classical": ["classical", "orchestral", "baroque", "chamber"],
    "hip hop": ["hip hop", "hiphop", "lofi", "boom bap"],
    "folk": ["folk", "acoustic", "country", "celtic"],
    "pop": ["pop", "indie pop", "radio pop"],
}
INSTRUMENT_SYNONYMS = {
    "drums": ["drums", "beat", "percussion", "drum kit"],
    "electric piano": ["electric piano", "rhodes", "keys"],
    "saxophone": ["saxophone", "sax"],
    "synth lead": ["synth lead", "lead synth", "synth"],
    "synth pad": ["synth pad", "pad", "pads"],
    "distorted guitar": ["distorted guitar", "heavy guitar"],
    "strings": ["strings", "string ensemble", "orchestra"],
    "acoustic bass": ["acoustic bass", "double bass", "upright bass"],
    "violin": ["violin", "fiddle"],
    "glockenspiel": ["glockenspiel", "bells"],
    "electric bass": ["electric bass", "bass guitar"],
}
EXTRA_WORDS = "a an and with without no in of track song music instrumental tempo bpm key mid slow moderate fast major minor drums percussion beat bass solo".split()


def caption_words() -> List[str]:
    """Every word a generated caption can contain (numbers excepted: they are spelled digit by digit),
    most frequent first. This is the word list of the tokenizer vocabulary."""
    words: List[str] = []
    seen = set()

    def add(text: str) -> None:
        for w in text.replace(",", " ").split():
            if w not in seen and not w.isdigit() and "#" not in w:
                seen.add(w)
                words.append(w)

    for w in EXTRA_WORDS:
        add(w)
    for s in STYLES:
        add(s)
    for name in INSTRUMENTS:
        add(name)
    for syn in list(STYLE_SYNONYMS.values()) + list(INSTRUMENT_SYNONYMS.values()):
        for w in syn:
            add(w)
    for moods in MOODS.values():
        for m in moods:
            add(m)
    for k in KEYS:
        add(k)
    return words


CAPTION_WORDS = caption_words()

# ------------------------------------------------------------------------------------------------
# Parameters and captions


def tempo_word(bpm: int) -> str:
    return "slow" if bpm < 90 else ("moderate" if bpm <= 120 else "fast")


def sample_params(rng: random.Random, seconds: float) -> dict:
    style = rng.choice(list(STYLES))
    st = STYLES[style]
    mode = "minor" if rng.random() < st["minor_p"] else "major"
    bpm = rng.randint(*st["bpm"])
    root = rng.randrange(12)
    solo_piano = rng.random() < st.get("solo_piano_p", 0.0)
    drums = (not solo_piano) and rng.random() < st["drums"]
    if solo_piano:
        lead, harmony, bass = "piano", "piano", None
        harmony_pattern = rng.choice(["alberti", "arp8", "block4"])
    else:
        lead = rng.choice(st["lead"])
        harmony = rng.choice([h for h in st["harmony"] if h != lead] or st["harmony"])
        harmony_pattern = rng.choice(st["harmony_pattern"])
        bass = rng.choice(st["bass"]) if rng.random() < st["bass_p"] else None
    # Sometimes drop the melody or the chords so that instrument words really mean something.
    has_lead = solo_piano or rng.random() < 0.9
    has_harmony = solo_piano or not has_lead or rng.random() < 0.9
    prog = rng.choice(PROGRESSIONS[mode])
    return dict(
        style=style, mode=mode, key=KEYS[root], root=root, bpm=bpm, tempo=tempo_word(bpm),
        mood=rng.choice(MOODS[(mode, tempo_word(bpm))]), solo_piano=solo_piano,
        lead=lead if has_lead else None, harmony=harmony if has_harmony else None, harmony_pattern=harmony_pattern,
        bass=bass, bass_pattern=rng.choice(st["bass_pattern"]), drums=drums,
        kit=rng.choice(st["kit"]) if drums else None, swing=st["swing"], density=rng.choice(st["density"]),
        progression=prog, sevenths=bool(st.get("sevenths")), reverb=st.get("reverb", 40), seconds=seconds,
        octave=rng.choice([-1, 0, 0, 1]) if not solo_piano else 0,
    )


def synonym(table: Dict[str, List[str]], name: str, rng: Optional[random.Random]) -> str:
    alts = table.get(name)
    if rng is None or not alts or rng.random() < 0.7:
        return name
    return rng.choice(alts[1:])


def instrument_list(p: dict, rng: Optional[random.Random] = None) -> List[str]:
    if p["solo_piano"]:
        return ["solo piano"]
    names: List[str] = []
    for role in ("lead", "harmony", "bass"):
        n = p[role]
        if n and n not in names:
            names.append(n)
    if p["drums"]:
        names.insert(0, "drums")
    return [synonym(INSTRUMENT_SYNONYMS, n, rng) for n in names]


def join_words(items: List[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def make_caption(p: dict, rng: random.Random) -> str:
    """A caption for parameters `p`. Fields are dropped and reordered at random so that each one
    (tempo, bpm, mood, mode, style, instruments) is learnt on its own; call it again for a new caption
    of the same clip (the LM trainer does, every epoch)."""
    insts = instrument_list(p, rng)
    if rng.random() < 0.5:
        rng.shuffle(insts)
    inst = join_words(insts)
    if not p["drums"] and rng.random() < 0.3:
        inst += rng.choice([" without drums", ", no drums"])
    tempo = "mid tempo" if p["tempo"] == "moderate" and rng.random() < 0.5 else p["tempo"]
    mode = p["mode"] if rng.random() < 0.7 else f"{p['key']} {p['mode']}"
    keep = lambda prob: rng.random() < prob  # noqa: E731
    fields: List[str] = []
    style = synonym(STYLE_SYNONYMS, p["style"], rng)
    head = " ".join(x for x in [tempo if keep(0.85) else "", p["mood"] if keep(0.6) else "", style] if x)
    has_style = keep(0.9)
    has_inst = keep(0.9) or not has_style
    if has_style:
        fields.append(head + (rng.choice([" track", " song", " music", ""]) if keep(0.5) else ""))
    elif keep(0.85):
        fields.append(tempo)
    if has_inst:
        fields.append(("with " if has_style and keep(0.5) else "") + inst)
    if keep(0.8):
        fields.append(f"{p['bpm']} bpm")
    if keep(0.8):
        fields.append(mode)
    if not has_style and keep(0.6):
        fields.append(p["mood"])
    if keep(0.3):
        rng.shuffle(fields)
    return ", ".join(fields)


def make_short_caption(p: dict, rng: random.Random) -> str:
    """One or two tags of the clip ("drums", "slow piano", "dark", "fast, jazz"): the short prompts people
    type, which the full captions alone leave out of distribution."""
    insts = instrument_list(p, rng)
    tags = [p["tempo"], p["mood"], synonym(STYLE_SYNONYMS, p["style"], rng), rng.choice(insts) if insts else "",
            "drums" if p["drums"] else rng.choice(["no drums", "without drums"]), p["mode"]]
    tags = [t for t in tags if t]
    picked = rng.sample(tags, rng.choice([1, 1, 2]))
    return " ".join(picked) if len(picked) == 2 and rng.random() < 0.5 else ", ".join(picked)


# ------------------------------------------------------------------------------------------------
# Composition


def scale_of(mode: str) -> List[int]:
    return MAJOR if mode == "major" else MINOR


def degree_pitch(root_midi: int, scale: List[int], deg: int) -> int:
    return root_midi + scale[deg % 7] + 12 * (deg // 7)


def chord_pitches(root_midi: int, scale: List[int], deg: int, sevenths: bool) -> List[int]:
    degs = [deg, deg + 2, deg + 4] + ([deg + 6] if sevenths else [])
    return [degree_pitch(root_midi, scale, d) for d in degs]


def fit(pitch: int, lo: int, hi: int) -> int:
    while pitch < lo:
        pitch += 12
    while pitch > hi:
        pitch -= 12
    return pitch


def voice(chord: List[int], lo: int, hi: int) -> List[int]:
    """Chord tones placed in the middle of [lo, hi]."""
    center = (lo + hi) // 2 - 5
    out = sorted(fit(c, center, center + 11) for c in chord)
    return [fit(x, lo, hi) for x in out]


class Composer:
    def __init__(self, p: dict, rng: random.Random):
        self.p, self.rng = p, rng
        self.beat = 60_000.0 / p["bpm"]  # ms per beat (= ticks, see TPQ)
        self.bar = 4 * self.beat
        self.bars = int(math.ceil(p["seconds"] * p["bpm"] / 60 / 4)) + 1
        self.scale = scale_of(p["mode"])
        self.root = 48 + p["root"]  # tonic in octave 3
        self.tracks: List[Track] = []

    def t(self, beats: float) -> int:
        """Beats -> ticks with swing: off-beat eighths move towards the triplet position."""
        b = math.floor(beats)
        frac = beats - b
        sw = self.p["swing"]
        if sw > 0:
            if abs(frac - 0.5) < 1e-6:
                frac = 0.5 + sw * (2 / 3 - 0.5)
            elif sw < 1 and (abs(frac - 0.25) < 1e-6 or abs(frac - 0.75) < 1e-6):
                frac += sw * 0.12
        return int(round((b + frac) * self.beat))

    def new_track(self, ch: int, program: Optional[int], volume: int, name: str) -> Track:
        tr = Track()
        meta = name.encode()
        tr.add(0, b"\xff\x03" + _vlq(len(meta)) + meta, 0)
        if program is not None:
            tr.add(0, bytes([0xC0 | ch, program]), 0)
        tr.add(0, bytes([0xB0 | ch, 7, volume]), 0)
        tr.add(0, bytes([0xB0 | ch, 91, self.p["reverb"]]), 0)
        tr.add(0, bytes([0xB0 | ch, 93, 0]), 0)  # no chorus
        self.tracks.append(tr)
        return tr

    def chord_at(self, bar: int) -> int:
        prog = self.p["progression"]
        return prog[bar % len(prog)]

    def compose(self) -> List[Track]:
        p = self.p
        if p["harmony"]:
            self.harmony(0)
        if p["lead"]:
            self.melody(1)
        if p["bass"] or p["solo_piano"]:
            self.bassline(2)
        if p["drums"]:
            self.drums()
        return self.tracks

    # --- harmony ---------------------------------------------------------------------------------
    def harmony(self, ch: int) -> None:
        p, rng = self.p, self.rng
        name = p["harmony"]
        prog, lo, hi = INSTRUMENTS[name]
        tr = self.new_track(ch, prog, 85 if p["lead"] else 100, name)
        pat = p["harmony_pattern"]
        for bar in range(self.bars):
            chord = voice(chord_pitches(self.root, self.scale, self.chord_at(bar), p["sevenths"]), max(lo, 48), min(hi, 76))
            t0 = bar * 4.0
            v = lambda base: base + rng.randint(-8, 8)  # noqa: E731
            if pat == "pad":
                for n in chord:
                    tr.note(ch, self.t(t0), int(4 * self.beat) - 10, n, v(70))
            elif pat == "block4":
                for b in range(4):
                    for n in chord:
                        tr.note(ch, self.t(t0 + b), int(self.beat) - 40, n, v(72 if b % 2 == 0 else 62))
            elif pat == "stabs":
                for b in (0.0, 1.5, 2.5) if rng.random() < 0.5 else (0.5, 1.5, 2.5, 3.5):
                    for n in chord:
                        tr.note(ch, self.t(t0 + b), int(self.beat / 3), n, v(80))
            elif pat == "comp":
                hits = rng.choice([(1.0, 3.0), (0.5, 2.0, 3.5), (1.5, 3.0), (0.0, 2.5)])
                for b in hits:
                    for n in chord:
                        tr.note(ch, self.t(t0 + b), int(self.beat * 0.7), n, v(68))
            elif pat in ("arp8", "arp16", "alberti"):
                step = 0.25 if pat == "arp16" else 0.5
                seq = chord + [chord[0] + 12] + chord[1:][::-1] if pat != "alberti" else [chord[0], chord[-1], chord[1], chord[-1]]
                for i in range(int(4 / step)):
                    tr.note(ch, self.t(t0 + i * step), int(self.beat * step * 0.95), seq[i % len(seq)], v(74 if i % 2 == 0 else 64))
            elif pat in ("strum8", "power8"):
                if pat == "power8":
                    r = fit(degree_pitch(self.root, self.scale, self.chord_at(bar)), 40, 52)
                    notes = [r, r + 7, r + 12]
                else:
                    notes = voice(chord_pitches(self.root, self.scale, self.chord_at(bar), False), 48, 67)
                accents = [1, 0, 0.6, 0, 1, 0.6, 0.3, 0.6] if pat == "strum8" else [1, 0.7] * 4
                for i, a in enumerate(accents):
                    if a == 0:
                        continue
                    for j, n in enumerate(notes):
                        tr.note(ch, self.t(t0 + i * 0.5) + j * 12, int(self.beat * 0.45), n, v(int(55 + 40 * a)))
            else:
                raise ValueError(pat)

    # --- melody ----------------------------------------------------------------------------------
    RHYTHMS = {
        "sparse": [[2, 2], [4], [3, 1], [1, 1, 2], [2, 1, 1]],
        "medium": [[1, 1, 1, 1], [1, 0.5, 0.5, 2], [1.5, 0.5, 1, 1], [0.5, 0.5, 1, 2], [2, 1, 1], [1, 1, 2]],
        "dense": [[0.5] * 8, [0.5, 0.5, 1, 0.5, 0.5, 1], [0.25, 0.25, 0.5, 1, 0.5, 0.5, 1], [1, 0.5, 0.5, 0.5, 0.5, 1]],
    }

    def melody(self, ch: int) -> None:
        p, rng = self.p, self.rng
        name = p["lead"]
        prog, lo, hi = INSTRUMENTS[name]
        lo, hi = max(lo, 55 + 12 * p["octave"]), min(hi, 84 + 12 * p["octave"])
        if hi - lo < 12:
            lo, hi = INSTRUMENTS[name][1], INSTRUMENTS[name][2]
        tr = self.new_track(ch, prog, 110, name)
        # A two-bar motif (rhythm + scale-degree contour), repeated on every chord with variations.
        motif: List[Tuple[float, float, int, bool]] = []  # (start beat, length, degree offset, rest)
        deg = 0
        for half in range(2):
            t = 0.0
            for d in rng.choice(self.RHYTHMS[p["density"]]):
                deg = max(-3, min(9, deg + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3])))
                rest = rng.random() < 0.12 and t > 0
                motif.append((half * 4 + t, d, deg, rest))
                t += d
        center = (lo + hi) // 2
        base_deg = 7 * ((center - self.root) // 12)  # scale degree near the middle of the range
        for start in range(0, self.bars, 2):
            vary = rng.random() < 0.35
            for (b, d, off, rest) in motif:
                bar = start + int(b // 4)
                if bar >= self.bars or rest:
                    continue
                chord_deg = self.chord_at(bar)
                dg = base_deg + off + (chord_deg if off % 2 == 0 else 0)
                if vary and rng.random() < 0.4:
                    dg += rng.choice([-1, 1])
                pitch = fit(degree_pitch(self.root, self.scale, dg), lo, hi)
                tr.note(ch, self.t(start * 4 + b), int(self.beat * d * 0.92), pitch, 84 + rng.randint(-10, 12) + (8 if b % 1 == 0 else 0))

    # --- bass ------------------------------------------------------------------------------------
    def bassline(self, ch: int) -> None:
        p, rng = self.p, self.rng
        if p["solo_piano"]:
            name, pat = "piano", "whole"
            prog, lo, hi = 0, 36, 55
        else:
            name, pat = p["bass"], p["bass_pattern"]
            prog, lo, hi = INSTRUMENTS[name]
        tr = self.new_track(ch, prog, 105 if name != "piano" else 90, name)
        for bar in range(self.bars):
            deg = self.chord_at(bar)
            r = fit(degree_pitch(self.root, self.scale, deg), lo, lo + 11)
            fifth = fit(degree_pitch(self.root, self.scale, deg + 4), r, r + 11)
            t0 = bar * 4.0
            v = lambda base: base + rng.randint(-6, 6)  # noqa: E731
            if pat == "whole":
                tr.note(ch, self.t(t0), int(4 * self.beat) - 20, r, v(80))
            elif pat == "half":
                tr.note(ch, self.t(t0), int(2 * self.beat) - 20, r, v(80))
                tr.note(ch, self.t(t0 + 2), int(2 * self.beat) - 20, fifth, v(72))
            elif pat == "root8":
                for i in range(8):
                    tr.note(ch, self.t(t0 + i * 0.5), int(self.beat * 0.45), r, v(90 if i % 2 == 0 else 78))
            elif pat == "octave8":
                for i in range(8):
                    tr.note(ch, self.t(t0 + i * 0.5), int(self.beat * 0.4), r + (12 if i % 2 else 0), v(88))
            elif pat == "offbeat8":
                for i in range(4):
                    tr.note(ch, self.t(t0 + i + 0.5), int(self.beat * 0.4), r, v(95))
            elif pat == "root_fifth":
                for i, n in enumerate([r, fifth, r, fifth]):
                    tr.note(ch, self.t(t0 + i), int(self.beat * 0.85), n, v(88 if i % 2 == 0 else 76))
            elif pat == "walking":
                nxt = fit(degree_pitch(self.root, self.scale, self.chord_at(bar + 1)), lo, lo + 11)
                third = fit(degree_pitch(self.root, self.scale, deg + 2), r, r + 11)
                approach = nxt + rng.choice([-1, 1, 2, -2])
                for i, n in enumerate([r, third, fifth, approach]):
                    tr.note(ch, self.t(t0 + i), int(self.beat * 0.9), n, v(84))
            elif pat == "hiphop":
                for b, d in [(0.0, 1.2), (1.75, 0.5), (2.5, 1.0)]:
                    tr.note(ch, self.t(t0 + b), int(self.beat * d), r, v(100))
            else:
                raise ValueError(pat)

    # --- drums -----------------------------------------------------------------------------------
    def drums(self) -> None:
        p, rng = self.p, self.rng
        ch = 9
        tr = self.new_track(ch, None, 110, "drums")
        KICK, SNARE, CLAP, HAT, OHAT, RIDE, CRASH, TAMB, STICK, PEDAL = 36, 38, 39, 42, 46, 51, 49, 54, 37, 44
        kit = p["kit"]
        # 16 steps per bar: (step, note, velocity)
        pats = {
            "four": [(s, KICK, 110) for s in (0, 4, 8, 12)] + [(s, CLAP, 95) for s in (4, 12)] + [(s, HAT, 80) for s in (2, 6, 10, 14)],
            "four_open": [(s, KICK, 110) for s in (0, 4, 8, 12)] + [(s, CLAP, 95) for s in (4, 12)] + [(s, OHAT, 75) for s in (2, 6, 10, 14)] + [(s, HAT, 55) for s in range(1, 16, 2)],
            "rock": [(0, KICK, 115), (8, KICK, 110), (10, KICK, 90), (4, SNARE, 110), (12, SNARE, 112)] + [(s, HAT, 85 if s % 4 == 0 else 70) for s in range(0, 16, 2)],
            "pop": [(0, KICK, 110), (6, KICK, 90), (8, KICK, 105), (4, SNARE, 105), (12, SNARE, 105)] + [(s, HAT, 80 if s % 4 == 0 else 65) for s in range(0, 16, 2)],
            "boombap": [(0, KICK, 115), (7, KICK, 95), (10, KICK, 105), (4, SNARE, 112), (12, SNARE, 112)] + [(s, HAT, 75 if s % 4 == 0 else 55) for s in range(0, 16, 2)],
            "swing": [(s, RIDE, 80) for s in (0, 4, 8, 12)] + [(s, RIDE, 65) for s in (6, 14)] + [(s, PEDAL, 60) for s in (4, 12)] + [(0, KICK, 60), (10, STICK, 50)],
            "folk": [(0, KICK, 95), (8, KICK, 90)] + [(s, TAMB, 70 if s % 4 == 0 else 55) for s in range(0, 16, 2)] + [(s, STICK, 70) for s in (4, 12)],
        }
        pat = pats[kit]
        for bar in range(self.bars):
            for step, note, vel in pat:
                beat = bar * 4 + step / 4
                tr.note(ch, self.t(beat), int(self.beat / 4), note, vel + rng.randint(-8, 8))
            if bar == 0 and kit in ("rock", "pop", "four_open"):
                tr.note(ch, 0, int(self.beat), CRASH, 95)
            if bar % 4 == 3 and kit in ("rock", "pop", "boombap") and rng.random() < 0.5:
                for s in (13, 14, 15):
                    tr.note(ch, self.t(bar * 4 + s / 4), int(self.beat / 4), SNARE, 80 + 8 * (s - 13))


# ------------------------------------------------------------------------------------------------
# Rendering


def find_soundfont(path: Optional[str]) -> str:
    for p in ([path] if path else []) + list(SOUNDFONT_CANDIDATES):
        if p and os.path.exists(p):
            return p
    sys.exit("generate.py: no General MIDI soundfont found; install Debian's fluid-soundfont-gm (or pass --soundfont)")


def read_wav_mono(path: str) -> np.ndarray:
    with wave.open(path, "rb") as w:
        ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        if width != 2 or rate != SAMPLE_RATE:
            raise RuntimeError(f"{path}: expected 16-bit {SAMPLE_RATE} Hz, got {8 * width}-bit {rate} Hz")
        raw = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float32) / 32768.0
    return raw.reshape(-1, ch).mean(axis=1)


def write_wav_mono16(path: str, samples: np.ndarray) -> None:
    pcm = np.clip(np.round(samples * 32767.0), -32767, 32767).astype("<i2")
    tmp = path + ".partial"
    with wave.open(tmp, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)


GAP_S = 2.0  # silence rendered between the clips of one fluidsynth run
GM_SYSTEM_ON = b"\xf0\x05\x7e\x7f\x09\x01\xf7"  # resets every channel and clears reverb/chorus


def batch_midi(clips: Sequence[List[Track]], seconds: float) -> List[Track]:
    """One MIDI file playing `clips` back to back, clip k starting at k * (seconds + GAP_S). Each clip
    begins with a GM System On (fluidsynth then resets all channels and clears the effect buffers) and
    ends with all-sound-off, so it renders exactly as it would alone."""
    conductor = Track()
    conductor.add(0, b"\xff\x51\x03" + struct.pack(">I", MIDI_TEMPO_US)[1:], 0)
    body = Track()
    end_ms = int(round(seconds * 1000))
    span = clip_span_ms(seconds)
    for k, tracks in enumerate(clips):
        off = k * span
        body.add(off, GM_SYSTEM_ON, -1)
        for tr in tracks:
            for tick, order, data in tr.events:
                if data[0] == 0xFF:
                    continue  # meta events (track names)
                if tick > end_ms:
                    if data[0] & 0xF0 != 0x80:
                        continue
                    tick = end_ms
                body.add(off + tick, data, order)
        for ch in range(16):
            body.add(off + end_ms + 1, bytes([0xB0 | ch, 120, 0]), 0)  # all sound off
            body.add(off + end_ms + 1, bytes([0xB0 | ch, 123, 0]), 0)  # all notes off
    conductor.add(len(clips) * span, b"\xff\x01\x03end", 0)
    return [conductor, body]


def clip_span_ms(seconds: float) -> int:
    span = int(round((seconds + GAP_S) * 1000))
    return span + (span % 2)  # even: every clip starts on the same phase of fluidsynth's 64-sample blocks


def render_batch(items: Sequence[Tuple[dict, random.Random]], soundfont: str, workdir: str, midi_paths: Optional[Sequence[str]] = None) -> List[np.ndarray]:
    """Renders clips with one fluidsynth process; returns the raw mono audio of each clip."""
    seconds = items[0][0]["seconds"]
    if any(p["seconds"] != seconds for p, _ in items):
        raise ValueError("clips of one batch must have the same length")
    clips = [Composer(p, rng).compose() for p, rng in items]
    if midi_paths:
        for tracks, path in zip(clips, midi_paths):
            write_midi(path, batch_midi([tracks], seconds))
    mid = os.path.join(workdir, "batch.mid")
    raw = os.path.join(workdir, "batch.wav")
    write_midi(mid, batch_midi(clips, seconds))
    cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(SAMPLE_RATE), "-o", "synth.cpu-cores=1",
           "-o", "synth.chorus.active=0", "-T", "wav", "-O", "s16", "-F", raw, soundfont, mid]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    x = read_wav_mono(raw)
    n = int(round(seconds * SAMPLE_RATE))
    step = clip_span_ms(seconds) * SAMPLE_RATE // 1000
    out = []
    for k in range(len(items)):
        c = x[k * step : k * step + n]
        out.append(np.concatenate([c, np.zeros(n - len(c), np.float32)]))
    return out


def finish_clip(x: np.ndarray, wav_path: str) -> dict:
    """Loudness: RMS to -20 dBFS with peaks below -0.5 dBFS, 10 ms fade-out at the cut; 16-bit WAV."""
    n = len(x)
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1e-9
    peak = float(np.max(np.abs(x))) or 1e-9
    gain = min(0.1 / rms, 0.944 / peak)
    y = x * gain
    fade = int(0.01 * SAMPLE_RATE)
    y[n - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    write_wav_mono16(wav_path, y)
    return dict(rms_db=round(20 * math.log10(rms * gain), 2), gain_db=round(20 * math.log10(gain), 2))


def clip_rng(seed: int, index: int, what: str) -> random.Random:
    # Seeding with a string hashes it with SHA-512: stable across Python versions and processes.
    return random.Random(f"riverrun-demo:{seed}:{index}:{what}")


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--start", type=int, default=0, help="first clip index (for shards)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--soundfont", default=None)
    ap.add_argument("--keep-midi", action="store_true", help="also write OUT/midi/NNNNNN.mid")
    ap.add_argument("--batch", type=int, default=32, help="clips rendered per fluidsynth run (output does not depend on it)")
    args = ap.parse_args(argv)
    sf = find_soundfont(args.soundfont)
    if shutil.which("fluidsynth") is None:
        sys.exit("generate.py: fluidsynth not found; install Debian's fluidsynth")
    os.makedirs(os.path.join(args.out, "clips"), exist_ok=True)
    if args.keep_midi:
        os.makedirs(os.path.join(args.out, "midi"), exist_ok=True)
    with open(os.path.join(args.out, "vocab.json"), "w") as f:
        json.dump(CAPTION_WORDS, f, indent=0)
    index_path = os.path.join(args.out, "captions.jsonl")
    entries = _read_index(index_path)
    started = time.time()
    done = 0
    wanted = range(args.start, args.start + args.count)
    todo = [i for i in wanted if not (i in entries and os.path.exists(os.path.join(args.out, entries[i]["file"])))]  # resumable
    # fluidsynth carries a little state from one clip to the next (differences up to -30 dB in the first
    # second), so clips are always rendered in the same aligned groups [g*B, (g+1)*B): clip i is then a
    # pure function of (seed, i, --batch, --seconds), whatever --start/--count and resumptions were used.
    todo_set = set(todo)
    groups = sorted({i // args.batch for i in todo})
    with tempfile.TemporaryDirectory(prefix="riverrun-gen-") as work:
        for g in groups:
            group = list(range(g * args.batch, (g + 1) * args.batch))
            items = [(sample_params(clip_rng(args.seed, i, "params"), args.seconds), clip_rng(args.seed, i, "notes")) for i in group]
            midi = [os.path.join(args.out, "midi", f"{i:06d}.mid") for i in group] if args.keep_midi else None
            audio = render_batch(items, sf, work, midi)
            idx = [i for i in group if i in todo_set]
            for i, (params, _), x in zip(group, items, audio):
                if i not in todo_set:
                    continue
                rel = f"clips/{i:06d}.wav"
                stats = finish_clip(x, os.path.join(args.out, rel))
                caption = make_caption(params, clip_rng(args.seed, i, "caption"))
                entries[i] = dict(index=i, file=rel, caption=caption, params=params, **stats)
            done += len(idx)
            el = time.time() - started
            print(f"{done}/{len(todo)} clips in {el:.1f} s ({el / done:.2f} s/clip)", flush=True)
            _write_index(index_path, entries)
    _write_index(index_path, entries)
    el = time.time() - started
    if done:
        print(f"generated {done} clips of {args.seconds:g} s in {el:.1f} s ({el / done:.2f} s/clip) -> {args.out}")


def _read_index(path: str) -> Dict[int, dict]:
    entries: Dict[int, dict] = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                e = json.loads(line)
                entries[e["index"]] = e
    return entries


def _write_index(path: str, entries: Dict[int, dict]) -> None:
    """Merges `entries` into the index under a lock, so that shards (one process per core) can share
    one output directory."""
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = _read_index(path)
        merged.update(entries)
        tmp = path + ".partial"
        with open(tmp, "w") as f:
            for i in sorted(merged):
                f.write(json.dumps(merged[i], sort_keys=True) + "\n")
        os.replace(tmp, path)


if __name__ == "__main__":
    main()
