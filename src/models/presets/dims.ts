// The presets' dimensions: toy (`tiny`) and facebook/musicgen-small's exact shape (`small`).

export type Preset = 'tiny' | 'small';
export const PRESETS: readonly Preset[] = ['tiny', 'small'];

export function isPreset(x: string): x is Preset {
  return (PRESETS as readonly string[]).includes(x);
}

export interface PresetDims {
  t5: { dModel: number; dKv: number; dFf: number; layers: number; heads: number };
  decoder: { hidden: number; layers: number; heads: number; ffn: number; maxPositions: number };
  encodec: { hiddenSize: number; numFilters: number; codebookDim: number };
  /** Tokenizer (and text_encoder.vocab_size) size; undefined = just the built-in pieces. */
  textVocab: number | undefined;
  maxLength: number;
}

export const PRESET_DIMS: Record<Preset, PresetDims> = {
  tiny: {
    t5: { dModel: 32, dKv: 8, dFf: 64, layers: 2, heads: 4 },
    decoder: { hidden: 64, layers: 2, heads: 4, ffn: 128, maxPositions: 2048 },
    encodec: { hiddenSize: 16, numFilters: 4, codebookDim: 16 },
    textVocab: undefined,
    maxLength: 1500,
  },
  small: {
    t5: { dModel: 768, dKv: 64, dFf: 3072, layers: 12, heads: 12 },
    decoder: { hidden: 1024, layers: 24, heads: 16, ffn: 4096, maxPositions: 2048 },
    encodec: { hiddenSize: 128, numFilters: 64, codebookDim: 128 },
    textVocab: 32128,
    maxLength: 1500,
  },
};

/** Both presets use MusicGen's EnCodec codebook size. */
export const PRESET_CODEBOOK_SIZE = 2048;
