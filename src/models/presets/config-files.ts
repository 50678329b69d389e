// config.json and generation_config.json of a preset, in Hugging Face's MusicgenForConditionalGeneration layout.
import { PRESET_CODEBOOK_SIZE, PRESET_DIMS, type Preset } from './dims.ts';
import { presetVocab } from './tokenizer-files.ts';

type Json = Record<string, unknown>;

/** The config.json of a preset (without the seed, which writeRandomCheckpoint adds). */
export function presetConfig(preset: Preset): Json {
  const d = PRESET_DIMS[preset];
  const vocab = presetVocab(preset).length;
  return {
    riverrun_random: true,
    _name_or_path: `riverrun/random-${preset}`,
    architectures: ['MusicgenForConditionalGeneration'],
    model_type: 'musicgen',
    is_encoder_decoder: true,
    torch_dtype: 'float32',
    text_encoder: {
      architectures: ['T5EncoderModel'],
      model_type: 't5',
      vocab_size: vocab,
      d_model: d.t5.dModel,
      d_kv: d.t5.dKv,
      d_ff: d.t5.dFf,
      num_layers: d.t5.layers,
      num_decoder_layers: d.t5.layers,
      num_heads: d.t5.heads,
      relative_attention_num_buckets: 32,
      relative_attention_max_distance: 128,
      dropout_rate: 0.1,
      layer_norm_epsilon: 1e-6,
      initializer_factor: 1.0,
      feed_forward_proj: 'relu',
      dense_act_fn: 'relu',
      is_gated_act: false,
      is_encoder_decoder: true,
      use_cache: true,
      tie_word_embeddings: true,
      n_positions: 512,
      pad_token_id: 0,
      eos_token_id: 1,
      decoder_start_token_id: 0,
    },
    audio_encoder: {
      architectures: ['EncodecModel'],
      model_type: 'encodec',
      target_bandwidths: [2.2],
      sampling_rate: 32000,
      audio_channels: 1,
      normalize: false,
      chunk_length_s: null,
      overlap: null,
      hidden_size: d.encodec.hiddenSize,
      num_filters: d.encodec.numFilters,
      num_residual_layers: 1,
      upsampling_ratios: [8, 5, 4, 4],
      norm_type: 'weight_norm',
      kernel_size: 7,
      last_kernel_size: 7,
      residual_kernel_size: 3,
      dilation_growth_rate: 2,
      use_causal_conv: false,
      pad_mode: 'reflect',
      compress: 2,
      num_lstm_layers: 2,
      trim_right_ratio: 1.0,
      codebook_size: PRESET_CODEBOOK_SIZE,
      codebook_dim: d.encodec.codebookDim,
      use_conv_shortcut: false,
      torch_dtype: 'float32',
    },
    decoder: {
      model_type: 'musicgen_decoder',
      vocab_size: PRESET_CODEBOOK_SIZE,
      max_position_embeddings: d.decoder.maxPositions,
      num_hidden_layers: d.decoder.layers,
      ffn_dim: d.decoder.ffn,
      num_attention_heads: d.decoder.heads,
      layerdrop: 0.0,
      use_cache: true,
      activation_function: 'gelu',
      hidden_size: d.decoder.hidden,
      dropout: 0.1,
      attention_dropout: 0.0,
      activation_dropout: 0.0,
      initializer_factor: 0.02,
      scale_embedding: false,
      num_codebooks: 4,
      audio_channels: 1,
      pad_token_id: PRESET_CODEBOOK_SIZE,
      bos_token_id: PRESET_CODEBOOK_SIZE,
      eos_token_id: null,
      tie_word_embeddings: false,
    },
  };
}

/** generation_config.json: musicgen-small's sampling defaults. */
export function presetGenerationConfig(preset: Preset): Json {
  return {
    bos_token_id: PRESET_CODEBOOK_SIZE,
    decoder_start_token_id: PRESET_CODEBOOK_SIZE,
    pad_token_id: PRESET_CODEBOOK_SIZE,
    do_sample: true,
    guidance_scale: 3.0,
    max_length: PRESET_DIMS[preset].maxLength,
    top_k: 250,
  };
}
