"""PyTorch modules in the exact Hugging Face MusicGen layout (MusicgenForConditionalGeneration: T5
encoder + enc_to_dec_proj + MusicGen decoder + EnCodec 32 kHz codec), written from the layout and math
documented in /work/shared/fixtures/musicgen-tiny/README.md and src/models/presets.ts.

`state_dict()` of `MusicgenModel` has exactly the key names and shapes of `tensorSpecs(config)` in
src/models/presets.ts (checked by training/check_layout.py), and `save_checkpoint` writes a checkpoint
directory that Riverrun (and Hugging Face transformers) loads like any MusicGen checkpoint.

Only the pieces Riverrun supports are implemented: T5 with the ReLU MLP, EnCodec with weight-normed
non-causal convolutions (reflect or constant padding), mono audio, GELU decoder.
"""
from __future__ import annotations

import copy
import json
import math
import os
import struct
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

F32_MIN = torch.finfo(torch.float32).min

# ------------------------------------------------------------------------------------------------
# Config (same fields as presetConfig in src/models/presets/config-files.ts)


def make_config(
    *,
    text_vocab: int,
    t5_d_model: int = 128,
    t5_d_kv: int = 32,
    t5_d_ff: int = 256,
    t5_layers: int = 2,
    t5_heads: int = 4,
    dec_hidden: int = 256,
    dec_layers: int = 4,
    dec_heads: int = 4,
    dec_ffn: int = 1024,
    max_positions: int = 512,
    codebook_size: int = 1024,
    codec_hidden: int = 64,
    codec_filters: int = 16,
    codec_lstm_layers: int = 2,
    name: str = "riverrun/demo",
) -> dict:
    """A full MusicGen config.json (MusicgenConfig layout) for the given sizes."""
    return {
        "_name_or_path": name,
        "architectures": ["MusicgenForConditionalGeneration"],
        "model_type": "musicgen",
        "is_encoder_decoder": True,
        "torch_dtype": "float32",
        "text_encoder": {
            "architectures": ["T5EncoderModel"],
            "model_type": "t5",
            "vocab_size": text_vocab,
            "d_model": t5_d_model,
            "d_kv": t5_d_kv,
            "d_ff": t5_d_ff,
            "num_layers": t5_layers,
            "num_decoder_layers": t5_layers,
            "num_heads": t5_heads,
            "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128,
            "dropout_rate": 0.1,
            "layer_norm_epsilon": 1e-6,
            "initializer_factor": 1.0,
            "feed_forward_proj": "relu",
            "dense_act_fn": "relu",
            "is_gated_act": False,
            "is_encoder_decoder": True,
            "use_cache": True,
            "tie_word_embeddings": True,
            "n_positions": 512,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "decoder_start_token_id": 0,
        },
        "audio_encoder": {
            "architectures": ["EncodecModel"],
            "model_type": "encodec",
            "target_bandwidths": [2.2],
            "sampling_rate": 32000,
            "audio_channels": 1,
            "normalize": False,
            "chunk_length_s": None,
            "overlap": None,
            "hidden_size": codec_hidden,
            "num_filters": codec_filters,
            "num_residual_layers": 1,
            "upsampling_ratios": [8, 5, 4, 4],
            "norm_type": "weight_norm",
            "kernel_size": 7,
            "last_kernel_size": 7,
            "residual_kernel_size": 3,
            "dilation_growth_rate": 2,
            "use_causal_conv": False,
            "pad_mode": "reflect",
            "compress": 2,
            "num_lstm_layers": codec_lstm_layers,
            "trim_right_ratio": 1.0,
            "codebook_size": codebook_size,
            "codebook_dim": codec_hidden,
            "use_conv_shortcut": False,
            "torch_dtype": "float32",
        },
        "decoder": {
            "model_type": "musicgen_decoder",
            "vocab_size": codebook_size,
            "max_position_embeddings": max_positions,
            "num_hidden_layers": dec_layers,
            "ffn_dim": dec_ffn,
            "num_attention_heads": dec_heads,
            "layerdrop": 0.0,
            "use_cache": True,
            "activation_function": "gelu",
            "hidden_size": dec_hidden,
            "dropout": 0.1,
            "attention_dropout": 0.0,
            "activation_dropout": 0.0,
            "initializer_factor": 0.02,
            "scale_embedding": False,
            "num_codebooks": 4,
            "audio_channels": 1,
            "pad_token_id": codebook_size,
            "bos_token_id": codebook_size,
            "eos_token_id": None,
            "tie_word_embeddings": False,
        },
    }


def make_generation_config(config: dict, top_k: int = 250, guidance: float = 3.0) -> dict:
    V = config["decoder"]["vocab_size"]
    return {
        "bos_token_id": V,
        "decoder_start_token_id": V,
        "pad_token_id": V,
        "do_sample": True,
        "guidance_scale": guidance,
        "max_length": config["decoder"]["max_position_embeddings"],
        "top_k": min(top_k, V),
    }


def num_quantizers(enc: dict) -> int:
    hop = int(np.prod(enc["upsampling_ratios"]))
    frame_rate = math.ceil(enc["sampling_rate"] / hop)
    return int(math.floor(1000 * max(enc["target_bandwidths"]) / (frame_rate * 10)))


# ------------------------------------------------------------------------------------------------
# T5 encoder


class T5LayerNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(var + self.eps))


def t5_relative_bucket(rel: torch.Tensor, num_buckets: int = 32, max_distance: int = 128) -> torch.Tensor:
    """Bidirectional T5 bucket of relative position key - query."""
    num_buckets //= 2
    buckets = (rel > 0).long() * num_buckets
    n = rel.abs()
    max_exact = num_buckets // 2
    large = max_exact + (torch.log(n.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)).long()
    large = torch.minimum(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(n < max_exact, n, large)


class T5Attention(nn.Module):
    def __init__(self, c: dict, has_bias: bool):
        super().__init__()
        self.h, self.dk = c["num_heads"], c["d_kv"]
        inner = self.h * self.dk
        self.q = nn.Linear(c["d_model"], inner, bias=False)
        self.k = nn.Linear(c["d_model"], inner, bias=False)
        self.v = nn.Linear(c["d_model"], inner, bias=False)
        self.o = nn.Linear(inner, c["d_model"], bias=False)
        self.num_buckets = c["relative_attention_num_buckets"]
        self.max_distance = c["relative_attention_max_distance"]
        if has_bias:
            self.relative_attention_bias = nn.Embedding(self.num_buckets, self.h)

    def position_bias(self, L: int, device) -> torch.Tensor:
        pos = torch.arange(L, device=device)
        b = t5_relative_bucket(pos[None, :] - pos[:, None], self.num_buckets, self.max_distance)
        return self.relative_attention_bias(b).permute(2, 0, 1)[None]  # [1, H, L, L]

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        q, k, v = (m(x).view(B, L, self.h, self.dk).transpose(1, 2) for m in (self.q, self.k, self.v))
        s = q @ k.transpose(-1, -2) + bias  # T5: no 1/sqrt(d) scaling
        a = torch.softmax(s.float(), dim=-1).type_as(s)
        return self.o((a @ v).transpose(1, 2).reshape(B, L, -1))


class T5LayerSelfAttention(nn.Module):
    def __init__(self, c: dict, has_bias: bool):
        super().__init__()
        self.SelfAttention = T5Attention(c, has_bias)
        self.layer_norm = T5LayerNorm(c["d_model"], c["layer_norm_epsilon"])
        self.dropout = nn.Dropout(c["dropout_rate"])

    def forward(self, x, bias):
        return x + self.dropout(self.SelfAttention(self.layer_norm(x), bias))


class T5DenseReluDense(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.wi = nn.Linear(c["d_model"], c["d_ff"], bias=False)
        self.wo = nn.Linear(c["d_ff"], c["d_model"], bias=False)
        self.dropout = nn.Dropout(c["dropout_rate"])

    def forward(self, x):
        return self.wo(self.dropout(F.relu(self.wi(x))))


class T5LayerFF(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.DenseReluDense = T5DenseReluDense(c)
        self.layer_norm = T5LayerNorm(c["d_model"], c["layer_norm_epsilon"])
        self.dropout = nn.Dropout(c["dropout_rate"])

    def forward(self, x):
        return x + self.dropout(self.DenseReluDense(self.layer_norm(x)))


class T5Block(nn.Module):
    def __init__(self, c: dict, has_bias: bool):
        super().__init__()
        self.layer = nn.ModuleList([T5LayerSelfAttention(c, has_bias), T5LayerFF(c)])

    def forward(self, x, bias):
        return self.layer[1](self.layer[0](x, bias))


class T5Stack(nn.Module):
    def __init__(self, c: dict, shared: nn.Embedding):
        super().__init__()
        self.embed_tokens = shared  # tied: stored under both names, like HF
        self.block = nn.ModuleList([T5Block(c, i == 0) for i in range(c["num_layers"])])
        self.final_layer_norm = T5LayerNorm(c["d_model"], c["layer_norm_epsilon"])
        self.dropout = nn.Dropout(c["dropout_rate"])

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embed_tokens(ids))
        L = ids.shape[1]
        bias = self.block[0].layer[0].SelfAttention.position_bias(L, ids.device)
        bias = bias + (1.0 - mask[:, None, None, :].to(x.dtype)) * F32_MIN
        for blk in self.block:
            x = blk(x, bias)
        return self.dropout(self.final_layer_norm(x))


class T5EncoderModel(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.shared = nn.Embedding(c["vocab_size"], c["d_model"])
        self.encoder = T5Stack(c, self.shared)

    def forward(self, ids, mask):
        return self.encoder(ids, mask)


# ------------------------------------------------------------------------------------------------
# MusicGen decoder


def sinusoidal_table(num: int, dim: int) -> torch.Tensor:
    """MusicgenSinusoidalPositionalEmbedding.get_embedding, in float32 like PyTorch computes it."""
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freq = torch.exp(torch.arange(half, dtype=torch.int64).float() * -step)
    arg = torch.arange(num, dtype=torch.int64).float().unsqueeze(1) * freq.unsqueeze(0)
    emb = torch.cat([torch.cos(arg), torch.sin(arg)], dim=1).view(num, -1)
    if dim % 2 == 1:
        emb = torch.cat([emb, torch.zeros(num, 1)], dim=1)
    return emb


class SinusoidalPositions(nn.Module):
    def __init__(self, num: int, dim: int):
        super().__init__()
        self.register_buffer("weights", sinusoidal_table(num, dim))


class MusicgenAttention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.scaling = self.hd ** -0.5
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.out_proj = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        S = kv.shape[1]
        q = (self.q_proj(x) * self.scaling).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(kv).view(B, S, self.h, self.hd).transpose(1, 2)
        v = self.v_proj(kv).view(B, S, self.h, self.hd).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)
        return self.out_proj((a @ v).transpose(1, 2).reshape(B, T, -1))


class MusicgenDecoderLayer(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        d = c["hidden_size"]
        self.self_attn = MusicgenAttention(d, c["num_attention_heads"])
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn = MusicgenAttention(d, c["num_attention_heads"])
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, c["ffn_dim"], bias=False)
        self.fc2 = nn.Linear(c["ffn_dim"], d, bias=False)
        self.final_layer_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, x, causal, enc, enc_mask):
        h = self.self_attn_layer_norm(x)
        x = x + self.dropout(self.self_attn(h, h, causal))
        h = self.encoder_attn_layer_norm(x)
        x = x + self.dropout(self.encoder_attn(h, enc, enc_mask))
        h = self.final_layer_norm(x)
        return x + self.dropout(self.fc2(F.gelu(self.fc1(h))))


class MusicgenDecoder(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        d, V, K = c["hidden_size"], c["vocab_size"], c["num_codebooks"]
        self.num_codebooks = K
        self.embed_tokens = nn.ModuleList([nn.Embedding(V + 1, d) for _ in range(K)])
        self.embed_positions = SinusoidalPositions(c["max_position_embeddings"], d)
        self.layers = nn.ModuleList([MusicgenDecoderLayer(c) for _ in range(c["num_hidden_layers"])])
        self.layer_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, ids: torch.Tensor, enc: torch.Tensor, enc_mask: torch.Tensor) -> torch.Tensor:
        """ids [B, K, T] (delayed, pad = V where forced), enc [B, S, d] (already projected and masked),
        enc_mask [B, S] (1 real, 0 pad) -> hidden [B, T, d]."""
        B, K, T = ids.shape
        x = sum(self.embed_tokens[k](ids[:, k]) for k in range(K)) + self.embed_positions.weights[:T]
        x = self.dropout(x)
        causal = torch.full((T, T), F32_MIN, device=ids.device).triu(1)[None, None]
        cross = ((1.0 - enc_mask.to(x.dtype)) * F32_MIN)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, causal, enc, cross)
        return self.layer_norm(x)


class MusicgenModelInner(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.decoder = MusicgenDecoder(c)


class MusicgenForCausalLM(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.model = MusicgenModelInner(c)
        self.lm_heads = nn.ModuleList([nn.Linear(c["hidden_size"], c["vocab_size"], bias=False) for _ in range(c["num_codebooks"])])

    def forward(self, ids, enc, enc_mask) -> torch.Tensor:
        """-> logits [B, K, T, V]."""
        h = self.model.decoder(ids, enc, enc_mask)
        return torch.stack([head(h) for head in self.lm_heads], dim=1)


# ------------------------------------------------------------------------------------------------
# EnCodec


class EncodecConv1d(nn.Module):
    def __init__(self, c: dict, cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.pad_mode = c["pad_mode"]
        self.conv = nn.utils.weight_norm(nn.Conv1d(cin, cout, k, stride, dilation=dilation))
        self.k, self.stride, self.dilation = k, stride, dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = (self.k - 1) * self.dilation + 1
        total = k - self.stride
        T = x.shape[-1]
        n_frames = (T - k + total) / self.stride + 1
        ideal = (math.ceil(n_frames) - 1) * self.stride + (k - total)
        extra = ideal - T
        right = total // 2
        left = total - right
        return self.conv(pad1d(x, left, right + extra, self.pad_mode))


def pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    if mode != "reflect":
        return F.pad(x, (left, right), "constant", 0.0)
    T = x.shape[-1]
    max_pad = max(left, right)
    extra = 0
    if T <= max_pad:
        extra = max_pad - T + 1
        x = F.pad(x, (0, extra))
    y = F.pad(x, (left, right), "reflect")
    return y[..., : y.shape[-1] - extra]


class EncodecConvTranspose1d(nn.Module):
    def __init__(self, c: dict, cin: int, cout: int, k: int, stride: int):
        super().__init__()
        self.conv = nn.utils.weight_norm(nn.ConvTranspose1d(cin, cout, k, stride))
        self.trim = k - stride

    def forward(self, x):
        y = self.conv(x)
        right = self.trim // 2
        left = self.trim - right
        return y[..., left : y.shape[-1] - right]


class EncodecResnetBlock(nn.Module):
    def __init__(self, c: dict, dim: int, dilations: Sequence[int]):
        super().__init__()
        hidden = dim // c["compress"]
        ks = [c["residual_kernel_size"], 1]
        blocks: List[nn.Module] = []
        for i, (k, d) in enumerate(zip(ks, dilations)):
            cin = dim if i == 0 else hidden
            cout = dim if i == len(ks) - 1 else hidden
            blocks += [nn.ELU(), EncodecConv1d(c, cin, cout, k, dilation=d)]
        self.block = nn.ModuleList(blocks)
        self.shortcut = nn.Identity()

    def forward(self, x):
        y = x
        for m in self.block:
            y = m(y)
        return self.shortcut(x) + y


class EncodecLSTM(nn.Module):
    def __init__(self, c: dict, dim: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, c["num_lstm_layers"])

    def forward(self, x):
        x = x.permute(2, 0, 1)
        return (self.lstm(x)[0] + x).permute(1, 2, 0)


class EncodecEncoder(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        nf = c["num_filters"]
        layers: List[nn.Module] = [EncodecConv1d(c, c["audio_channels"], nf, c["kernel_size"])]
        scaling = 1
        for ratio in reversed(c["upsampling_ratios"]):
            cur = scaling * nf
            for j in range(c["num_residual_layers"]):
                layers.append(EncodecResnetBlock(c, cur, [c["dilation_growth_rate"] ** j, 1]))
            layers += [nn.ELU(), EncodecConv1d(c, cur, cur * 2, ratio * 2, stride=ratio)]
            scaling *= 2
        layers += [EncodecLSTM(c, scaling * nf), nn.ELU(), EncodecConv1d(c, scaling * nf, c["hidden_size"], c["last_kernel_size"])]
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for m in self.layers:
            x = m(x)
        return x


class EncodecDecoder(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        nf = c["num_filters"]
        scaling = 2 ** len(c["upsampling_ratios"])
        layers: List[nn.Module] = [EncodecConv1d(c, c["hidden_size"], scaling * nf, c["kernel_size"]), EncodecLSTM(c, scaling * nf)]
        for ratio in c["upsampling_ratios"]:
            cur = scaling * nf
            layers += [nn.ELU(), EncodecConvTranspose1d(c, cur, cur // 2, ratio * 2, ratio)]
            for j in range(c["num_residual_layers"]):
                layers.append(EncodecResnetBlock(c, cur // 2, [c["dilation_growth_rate"] ** j, 1]))
            scaling //= 2
        layers += [nn.ELU(), EncodecConv1d(c, nf, c["audio_channels"], c["last_kernel_size"])]
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for m in self.layers:
            x = m(x)
        return x


class EuclideanCodebook(nn.Module):
    """HF EncodecEuclideanCodebook buffers, trained with EMA updates (k-means init, dead-code restarts)
    like the original EnCodec; only `embed` is used at inference."""

    def __init__(self, size: int, dim: int, decay: float = 0.99, eps: float = 1e-5, dead_fraction: float = 0.05):
        super().__init__()
        self.register_buffer("inited", torch.Tensor([False]))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("embed_avg", torch.zeros(size, dim))
        self.decay, self.eps, self.dead_fraction = decay, eps, dead_fraction

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, D] -> codes [N]: argmax of -(|x|^2 - 2 x.e + |e|^2), first index on ties."""
        e = self.embed
        dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ e.t() + e.pow(2).sum(1)[None, :])
        return dist.argmax(dim=-1)

    @torch.no_grad()
    def init_kmeans(self, x: torch.Tensor, iters: int = 10) -> None:
        g = torch.Generator().manual_seed(1234)
        n, K = x.shape[0], self.embed.shape[0]
        idx = torch.randperm(n, generator=g)[:K] if n >= K else torch.randint(0, n, (K,), generator=g)
        means = x[idx].clone()
        for _ in range(iters):
            codes = (-(x.pow(2).sum(1, keepdim=True) - 2 * x @ means.t() + means.pow(2).sum(1)[None])).argmax(-1)
            counts = torch.bincount(codes, minlength=means.shape[0]).float()
            sums = torch.zeros_like(means).index_add_(0, codes, x)
            nz = counts > 0
            means[nz] = sums[nz] / counts[nz, None]
        counts = torch.bincount(codes, minlength=means.shape[0]).float()
        self.embed.copy_(means)
        self.embed_avg.copy_(means * counts.clamp(min=1)[:, None])
        self.cluster_size.copy_(counts)
        self.inited.fill_(1.0)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        K = self.embed.shape[0]
        onehot_counts = torch.bincount(codes, minlength=K).float()
        sums = torch.zeros_like(self.embed).index_add_(0, codes, x)
        self.cluster_size.mul_(self.decay).add_(onehot_counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + K * self.eps) * n
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        # Dead codes (EMA usage under dead_fraction of the uniform share): restart them on random
        # vectors of this batch. The threshold scales with the batch, unlike EnCodec's fixed 2, because
        # our batches are small (a few hundred frames for 1024 entries).
        thr = self.dead_fraction * x.shape[0] / K
        dead = self.cluster_size < thr
        nd = int(dead.sum())
        if nd:
            pick = x[torch.randint(0, x.shape[0], (nd,), device=x.device)]
            self.embed[dead] = pick
            self.embed_avg[dead] = pick * thr
            self.cluster_size[dead] = thr


class EncodecVectorQuantization(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        self.codebook = EuclideanCodebook(size, dim)


class EncodecResidualVectorQuantizer(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.layers = nn.ModuleList([EncodecVectorQuantization(c["codebook_size"], c["codebook_dim"]) for _ in range(num_quantizers(c))])

    def encode(self, emb: torch.Tensor, n_q: Optional[int] = None) -> torch.Tensor:
        """emb [B, D, T] -> codes [B, n_q, T] (HF EncodecResidualVectorQuantizer.encode)."""
        B, D, T = emb.shape
        r = emb.permute(0, 2, 1).reshape(-1, D)
        out = []
        for layer in self.layers[: n_q or len(self.layers)]:
            cb = layer.codebook
            codes = cb.quantize(r)
            r = r - cb.embed[codes]
            out.append(codes.view(B, T))
        return torch.stack(out, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, n_q, T] -> quantized embeddings [B, D, T]."""
        q = sum(self.layers[i].codebook.embed[codes[:, i]] for i in range(codes.shape[1]))
        return q.permute(0, 2, 1)

    @torch.no_grad()
    def init_from(self, emb: torch.Tensor) -> None:
        """k-means initialisation of every codebook on encoder outputs emb [B, D, T], layer by layer on
        the residuals (better than EnCodec's first-batch init when batches are small)."""
        r = emb.permute(0, 2, 1).reshape(-1, emb.shape[1])
        for layer in self.layers:
            cb = layer.codebook
            cb.init_kmeans(r)
            r = r - cb.embed[cb.quantize(r)]

    def train_forward(self, emb: torch.Tensor, update: bool = True) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (quantized with straight-through gradient [B, D, T], commitment loss, codes)."""
        B, D, T = emb.shape
        x = emb.permute(0, 2, 1).reshape(-1, D)
        r = x.detach()
        quant = torch.zeros_like(x)
        commit = x.new_zeros(())
        codes_all = []
        residual_in = x
        for layer in self.layers:
            cb = layer.codebook
            if update and not bool(cb.inited.item()):
                cb.init_kmeans(r)
            codes = cb.quantize(r)
            q = cb.embed[codes]
            commit = commit + F.mse_loss(residual_in, q.detach())
            if update:
                cb.ema_update(r, codes)
            quant = quant + q
            residual_in = residual_in - q.detach()
            r = r - q
            codes_all.append(codes.view(B, T))
        out = x + (quant - x).detach()  # straight-through
        return out.view(B, T, D).permute(0, 2, 1), commit / len(self.layers), torch.stack(codes_all, 1)


class EncodecModel(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        self.config = c
        self.encoder = EncodecEncoder(c)
        self.decoder = EncodecDecoder(c)
        self.quantizer = EncodecResidualVectorQuantizer(c)

    @torch.no_grad()
    def encode_codes(self, audio: torch.Tensor) -> torch.Tensor:
        """audio [B, 1, N] -> codes [B, n_q, frames] (no normalisation, one chunk)."""
        return self.quantizer.encode(self.encoder(audio))

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.quantizer.decode(codes))


# ------------------------------------------------------------------------------------------------
# The whole model


class MusicgenModel(nn.Module):
    """MusicgenForConditionalGeneration's module tree (state_dict names = HF checkpoint names)."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = copy.deepcopy(config)
        self.text_encoder = T5EncoderModel(config["text_encoder"])
        self.audio_encoder = EncodecModel(config["audio_encoder"])
        self.decoder = MusicgenForCausalLM(config["decoder"])
        if config["text_encoder"]["d_model"] != config["decoder"]["hidden_size"]:
            self.enc_to_dec_proj = nn.Linear(config["text_encoder"]["d_model"], config["decoder"]["hidden_size"])
        else:
            self.enc_to_dec_proj = None

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """T5 -> projection -> times the mask: the decoder's cross-attention input, exactly as HF
        MusicgenForConditionalGeneration.forward / generate prepare it."""
        h = self.text_encoder(ids, mask)
        if self.enc_to_dec_proj is not None:
            h = self.enc_to_dec_proj(h)
        return h * mask[..., None].to(h.dtype)

    def lm_logits(self, text_ids, text_mask, delayed_ids) -> torch.Tensor:
        return self.decoder(delayed_ids, self.encode_text(text_ids, text_mask), text_mask)


# ------------------------------------------------------------------------------------------------
# Delay pattern


def delay_codes(codes: torch.Tensor, pad: int) -> torch.Tensor:
    """codes [B, K, T] -> delayed sequence [B, K, T + K]: column 0 is the start token, codebook k holds
    code t at column t + k + 1, every other position is `pad` (MusicGen's delay pattern; the same layout
    `generate.sequences` has in the reference fixture)."""
    B, K, T = codes.shape
    out = torch.full((B, K, T + K), pad, dtype=codes.dtype, device=codes.device)
    for k in range(K):
        out[:, k, k + 1 : k + 1 + T] = codes[:, k]
    return out


def undelay_codes(seq: torch.Tensor) -> torch.Tensor:
    """Inverse of delay_codes: [B, K, T + K] -> [B, K, T]."""
    B, K, S = seq.shape
    T = S - K
    return torch.stack([seq[:, k, k + 1 : k + 1 + T] for k in range(K)], 1)


# ------------------------------------------------------------------------------------------------
# Checkpoint files


def hf_state_dict(model: MusicgenModel) -> Dict[str, torch.Tensor]:
    """state_dict in checkpoint form: every tensor float32 and contiguous, tied embedding under both
    names (PyTorch already lists it twice)."""
    sd = model.state_dict(keep_vars=False)
    return {k: v.detach().to(torch.float32).contiguous().cpu() for k, v in sd.items()}


def write_safetensors(path: str, tensors: Dict[str, torch.Tensor], dtype: str = "F32") -> None:
    """Standard safetensors: 8-byte LE header length, JSON header (sorted names, F32 or F16,
    data_offsets), padded with spaces to a multiple of 8, raw little-endian data."""
    np_dtype = {"F32": "<f4", "F16": "<f2"}[dtype]
    names = sorted(tensors)
    header: Dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    blobs = []
    for n in names:
        a = tensors[n].numpy().astype(np_dtype, copy=False)
        b = a.tobytes(order="C")
        header[n] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
    """All tensors of a safetensors file as numpy arrays (F32, F64, I64, I32 supported)."""
    dtypes = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "I32": "<i4", "F16": "<f2"}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype=dtypes[v["dtype"]]).reshape(v["shape"]).copy()
    return out


def safetensors_shapes(path: str) -> Dict[str, List[int]]:
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def load_hf_weights(model: MusicgenModel, tensors: Dict[str, np.ndarray], strict: bool = True) -> None:
    sd = model.state_dict()
    missing = [k for k in sd if k not in tensors]
    if strict and missing:
        raise KeyError(f"missing tensors: {missing[:10]}")
    model.load_state_dict({k: torch.from_numpy(np.asarray(tensors[k], dtype=np.float32)) for k in sd if k in tensors}, strict=strict)


def save_checkpoint(out_dir: str, model: MusicgenModel, vocab: Sequence[Tuple[str, float]], generation: Optional[dict] = None,
                    extra_config: Optional[dict] = None, dtype: str = "F32") -> None:
    """Writes a Hugging Face MusicGen checkpoint directory: config.json, generation_config.json,
    tokenizer.json / tokenizer_config.json / special_tokens_map.json, model.safetensors (F32 or F16;
    last, via a rename: a complete model.safetensors means a complete checkpoint)."""
    from text_tokenizer import tokenizer_files  # noqa: E402 (training/ is on sys.path for every script)

    os.makedirs(out_dir, exist_ok=True)
    config = copy.deepcopy(model.config)
    config.pop("riverrun_random", None)
    if extra_config:
        config.update(extra_config)
    if config["text_encoder"]["vocab_size"] != len(vocab):
        raise ValueError(f"text_encoder.vocab_size {config['text_encoder']['vocab_size']} != tokenizer size {len(vocab)}")
    if os.path.exists(os.path.join(out_dir, "model.safetensors")):
        os.remove(os.path.join(out_dir, "model.safetensors"))

    def dump(name: str, obj: dict) -> None:
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")

    if dtype == "F16":
        config["torch_dtype"] = "float16"
    dump("config.json", config)
    dump("generation_config.json", generation or make_generation_config(config))
    for name, obj in tokenizer_files(vocab).items():
        dump(name, obj)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), hf_state_dict(model), dtype)


# ------------------------------------------------------------------------------------------------
# Generation (no KV cache: for previews and checks, not for speed)


@torch.no_grad()
def generate(
    model: MusicgenModel,
    text_ids: torch.Tensor,
    text_mask: torch.Tensor,
    max_new_tokens: int,
    guidance: float = 3.0,
    top_k: int = 0,
    temperature: float = 1.0,
    generator: Optional[torch.Generator] = None,
    return_steps: bool = False,
):
    """MusicGen generation for one prompt (text_ids [1, S]) with classifier-free guidance: the null
    condition is an all-zero encoder output with an all-zero mask. Greedy when top_k == 0 and
    temperature == 0, else top-k sampling. Returns (delayed sequence [K, max_new_tokens + 1],
    un-delayed codes [1, K, frames]) (+ per-step guided scores when return_steps)."""
    dec = model.decoder
    K = dec.model.decoder.num_codebooks
    V = model.config["decoder"]["vocab_size"]
    L = max_new_tokens + 1
    enc = model.encode_text(text_ids, text_mask)
    enc2 = torch.cat([enc, torch.zeros_like(enc)], 0)
    mask2 = torch.cat([text_mask, torch.zeros_like(text_mask)], 0)
    # Delay pattern for max_length L: codebook k forced at positions 0..k and >= L - K + 1 + k.
    forced = torch.zeros(K, L, dtype=torch.bool)
    for k in range(K):
        forced[k, : k + 1] = True
        forced[k, L - K + 1 + k :] = True
    seq = torch.full((K, 1), V, dtype=torch.long)
    steps = []
    for s in range(max_new_tokens):
        cur = seq.clone()
        cur[forced[:, : cur.shape[1]]] = V
        ids = cur[None].expand(2, K, cur.shape[1])
        logits = dec(ids, enc2, mask2)[:, :, -1]  # [2, K, V]
        cond, uncond = logits[0], logits[1]
        scores = uncond + (cond - uncond) * guidance
        steps.append(scores)
        if top_k == 0 and temperature == 0:
            nxt = scores.argmax(-1)
        else:
            sc = scores / max(temperature, 1e-6)
            if top_k:
                kth = torch.topk(sc, min(top_k, V), dim=-1).values[:, -1:]
                sc = sc.masked_fill(sc < kth, float("-inf"))
            nxt = torch.multinomial(torch.softmax(sc, -1), 1, generator=generator)[:, 0]
        seq = torch.cat([seq, nxt[:, None]], 1)
    seq[forced] = V
    codes = undelay_codes(seq[None])
    if return_steps:
        return seq, codes, torch.stack(steps)
    return seq, codes
