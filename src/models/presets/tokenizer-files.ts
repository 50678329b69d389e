// The presets' tokenizer: a T5-style SentencePiece Unigram over the words music prompts are made of,
// written as tokenizer.json, tokenizer_config.json and special_tokens_map.json.
import { PRESET_DIMS, type Preset } from './dims.ts';

type Json = Record<string, unknown>;

const SPECIALS = ['<pad>', '</s>', '<unk>'] as const;

// Words a music prompt is made of, roughly most useful first (earlier = higher unigram score).
const WORDS = `
a an the and or with without of in on for to from by at into over under like style mood vibe
inspired featuring feat song track music tune piece instrumental sound sounds beat beats loop loops
slow fast upbeat downbeat mid tempo bpm calm relaxing relaxed peaceful happy sad dark bright warm cold
melancholic melancholy uplifting energetic aggressive heavy light soft loud gentle dreamy ethereal
mysterious epic emotional romantic nostalgic hopeful tense suspenseful scary eerie haunting spooky
playful funky groovy bouncy driving hypnotic atmospheric spacious lush rich deep thick thin crisp punchy
distorted clean dirty gritty smooth mellow lazy sleepy intense powerful majestic triumphant heroic sweet
cute quirky weird strange minimal minimalistic repetitive simple complex catchy melodic harmonic rhythmic
chill cozy hazy dusty glitchy airy floating
ambient techno house deep trance dubstep drum jungle hiphop hip hop rap trap lofi lo fi jazz jazzy blues
rock metal punk pop indie folk country classical orchestral orchestra cinematic soundtrack score
electronic edm disco funk soul reggae dub ska latin salsa bossa nova samba tango flamenco afrobeat gospel
opera baroque synthwave vaporwave chillwave chiptune industrial grunge shoegaze garage breakbeat
downtempo chillout idm glitch noise drone experimental psychedelic progressive acoustic electro dance
world celtic medieval trailer game video retro vintage modern futuristic
piano keys organ synth synthesizer synths pad pads lead arp arpeggio arpeggios bass bassline sub guitar
guitars electric strings violin violins viola cello contrabass harp flute clarinet oboe bassoon
saxophone sax trumpet trombone horn horns tuba brass woodwind woodwinds drums kick snare hihat hihats hat
hats cymbal cymbals toms percussion congas bongos tabla shaker tambourine claps clap bells chimes
marimba xylophone vibraphone glockenspiel kalimba sitar koto banjo mandolin ukulele accordion harmonica
bagpipes didgeridoo vocals vocal voice voices singing chant choir humming whistle sample samples rhodes
wurlitzer moog
melody melodies harmony rhythm key major minor chord chords progression scale note notes tone riff riffs
solo groove swing shuffle syncopated reverb delay echo filter filtered sidechain compressed saturated
analog digital tape vinyl crackle hiss fade intro outro verse chorus bridge drop build buildup breakdown
climax ending background texture layer layers ambience soundscape
night morning evening rain ocean waves forest space city summer winter autumn spring sunset sunrise beach
party club festival study studying sleep meditation yoga workout running gaming movie film scene road
trip coffee shop cafe lounge elevator
60 70 80 90 100 110 120 128 130 140 150 160 170 174 180 80s 90s 70s 8bit 808 909
`;

/** Score of the i-th word piece: words beat spelling them out letter by letter. */
const wordScore = (i: number): number => -(3 + i * 0.01);
const CHAR_SCORE_PREFIXED = -8.5;
const CHAR_SCORE = -9.5;

function builtinVocab(): Array<[string, number]> {
  const out: Array<[string, number]> = SPECIALS.map((s) => [s, 0]);
  const seen = new Set<string>(SPECIALS);
  const add = (piece: string, score: number): void => {
    if (seen.has(piece)) return;
    seen.add(piece);
    out.push([piece, score]);
  };
  add('\u2581', -2.5);
  const words = WORDS.split(/\s+/).filter((w) => w.length > 0);
  for (const [i, w] of words.entries()) add(`\u2581${w}`, wordScore(i));
  // Every printable ASCII character, alone and at the start of a word: any ASCII text tokenizes
  // without <unk>.
  for (let c = 0x21; c <= 0x7e; c++) add(`\u2581${String.fromCharCode(c)}`, CHAR_SCORE_PREFIXED - (c - 0x21) * 1e-3);
  for (let c = 0x21; c <= 0x7e; c++) add(String.fromCharCode(c), CHAR_SCORE - (c - 0x21) * 1e-3);
  return out;
}

/** Filler sub-word pieces (letter bigrams/trigrams) that bring the vocabulary to `size` entries. */
function padVocab(vocab: Array<[string, number]>, size: number): void {
  const seen = new Set(vocab.map(([p]) => p));
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const candidates = function* (): Generator<string> {
    for (const prefix of ['\u2581', '']) for (const a of letters) for (const b of letters) yield `${prefix}${a}${b}`;
    for (const prefix of ['\u2581', ''])
      for (const a of letters) for (const b of letters) for (const c of letters) yield `${prefix}${a}${b}${c}`;
  };
  let i = 0;
  for (const piece of candidates()) {
    if (vocab.length >= size) break;
    if (seen.has(piece)) continue;
    seen.add(piece);
    vocab.push([piece, -12 - i * 1e-4]);
    i++;
  }
  if (vocab.length !== size) throw new Error(`cannot pad the tokenizer vocabulary to ${size} pieces`);
}

const vocabCache = new Map<Preset, Array<[string, number]>>();

/** [piece, score] for every id of the preset's tokenizer. Ids 0/1/2 = <pad>/</s>/<unk>. */
export function presetVocab(preset: Preset): ReadonlyArray<readonly [string, number]> {
  let v = vocabCache.get(preset);
  if (!v) {
    v = builtinVocab();
    const size = PRESET_DIMS[preset].textVocab;
    if (size !== undefined) padVocab(v, size);
    vocabCache.set(preset, v);
  }
  return v;
}

export interface TokenizerFiles {
  'tokenizer.json': Json;
  'tokenizer_config.json': Json;
  'special_tokens_map.json': Json;
}

/** tokenizer.json, tokenizer_config.json and special_tokens_map.json in T5TokenizerFast's layout. */
export function presetTokenizerFiles(preset: Preset): TokenizerFiles {
  const vocab = presetVocab(preset);
  const added = SPECIALS.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const metaspace = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true };
  const tokenizer: Json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, metaspace] },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: metaspace,
    model: { type: 'Unigram', unk_id: 2, vocab: vocab.map(([p, s]) => [p, s]), byte_fallback: false },
  };
  const addedDecoder: Record<string, Json> = {};
  for (const a of added) {
    const { id, ...rest } = a;
    addedDecoder[String(id)] = rest;
  }
  return {
    'tokenizer.json': tokenizer,
    'tokenizer_config.json': {
      added_tokens_decoder: addedDecoder,
      additional_special_tokens: [],
      clean_up_tokenization_spaces: true,
      eos_token: '</s>',
      extra_ids: 0,
      model_max_length: 512,
      pad_token: '<pad>',
      tokenizer_class: 'T5Tokenizer',
      unk_token: '<unk>',
    },
    'special_tokens_map.json': { eos_token: '</s>', pad_token: '<pad>', unk_token: '<unk>' },
  };
}
