"""Hugging Face transformers built from configs with randomised sizes: real encoder and decoder blocks.

Our own BERT/ViT spaces write attention out op by op; the ``hf`` family is transformers' own modelling
code (``AutoModel.from_config``, eager attention, no cache, random weights, nothing downloaded): BERT,
RoBERTa, DistilBERT, ALBERT, ELECTRA, DeBERTa-v2 encoders, GPT-2, GPT-NeoX, LLaMA, Mistral and Qwen2
decoders (rotary embeddings, RMSNorm, gated SiLU MLPs, grouped-query attention) and the T5 encoder.  The
model reads ``input`` token ids ``[batch, seq]``; a linear head on the first position gives two logits, as a
sequence classifier does, so training has a loss to step.
"""
from __future__ import annotations

import random
import warnings

import torch
from torch import nn

from .base import ModelSpace
from .config import ModelConfig
from .schema import Int, Obj, OneOf

ENCODERS = ("albert", "bert", "deberta-v2", "distilbert", "electra", "roberta", "t5")
DECODERS = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2")
MODEL_TYPES = ENCODERS + DECODERS
_GQA = ("llama", "mistral", "qwen2")  # grouped-query attention: kv_heads may be fewer than heads
BATCH_SIZES = (1, 2, 4, 8)


def _config_kwargs(arch: dict) -> dict:
    """Our size names → each model type's own config keys."""
    h, layers, heads, ffn, vocab = (int(arch[k]) for k in ("hidden", "layers", "heads", "intermediate", "vocab_size"))
    kind = arch["model_type"]
    if kind == "distilbert":
        return dict(dim=h, n_layers=layers, n_heads=heads, hidden_dim=ffn, vocab_size=vocab)
    if kind == "gpt2":
        return dict(n_embd=h, n_layer=layers, n_head=heads, n_inner=ffn, vocab_size=vocab, bos_token_id=0,
                    eos_token_id=0)
    if kind == "t5":
        return dict(d_model=h, num_layers=layers, num_heads=heads, d_ff=ffn, d_kv=h // heads, vocab_size=vocab)
    kwargs = dict(hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
                  vocab_size=vocab)
    if kind in ("albert", "electra"):
        kwargs["embedding_size"] = min(h, 128)
    if kind in _GQA:
        kwargs.update(num_key_value_heads=int(arch.get("kv_heads", heads)), bos_token_id=0, eos_token_id=0)
    if kind == "gpt_neox":
        kwargs.update(bos_token_id=0, eos_token_id=0)
    return kwargs


class HFClassifier(nn.Module):
    """``logits[batch, 2] = head(model(input).last_hidden_state[:, 0])``; an explicit all-ones attention
    mask keeps transformers' packed-sequence probe out of the trace."""

    def __init__(self, arch: dict) -> None:
        super().__init__()
        import transformers
        from transformers import AutoConfig

        from ..torchvision_compat import ensure_torchvision_importable

        ensure_torchvision_importable()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = AutoConfig.for_model(arch["model_type"], **_config_kwargs(arch))
            config.use_cache = False
            cls = transformers.T5EncoderModel if arch["model_type"] == "t5" else transformers.AutoModel
            self.model = (cls._from_config(config, attn_implementation="eager") if arch["model_type"] == "t5"
                          else cls.from_config(config, attn_implementation="eager"))
        self.head = nn.Linear(int(arch["hidden"]), 2)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - the ONNX input's name
        out = self.model(input_ids=input, attention_mask=torch.ones_like(input))
        return self.head(out.last_hidden_state[:, 0])


class HFSpace(ModelSpace):
    name = "hf"
    family = "hf"
    batch_sizes = BATCH_SIZES
    arch_schema = Obj({"model_type": OneOf(MODEL_TYPES), "hidden": Int(32, 2048), "layers": Int(1, 24),
                       "heads": Int(1, 32), "kv_heads": Int(1, 32), "intermediate": Int(32, 8192),
                       "vocab_size": Int(100, 65536)},
                      frozenset({"model_type", "hidden", "layers", "heads", "intermediate", "vocab_size"}))
    input_size_range = (1, 1024)

    def sample_arch(self, rng: random.Random) -> dict:
        kind = rng.choice(MODEL_TYPES)
        head_dim = rng.choice([32, 64])
        heads = rng.choice([2, 4, 6, 8, 12])
        hidden = head_dim * heads
        arch = {"model_type": kind, "hidden": hidden, "layers": rng.randint(1, 6), "heads": heads,
                "intermediate": hidden * rng.choice([2, 3, 4]), "vocab_size": rng.choice([1000, 8000, 32000])}
        if kind in _GQA:
            arch["kv_heads"] = rng.choice([h for h in (1, 2, heads // 2, heads) if h >= 1 and heads % h == 0])
        return arch

    def sample(self, rng: random.Random, batch_sizes: tuple[int, ...] = BATCH_SIZES) -> ModelConfig:
        """Batches up to 8: a sequence is many tokens already."""
        return super().sample(rng, tuple(b for b in batch_sizes if b <= max(BATCH_SIZES)) or BATCH_SIZES)

    def check_arch(self, config: ModelConfig) -> ModelConfig:
        checked = super().check_arch(config)
        arch = checked.arch
        if arch["hidden"] % arch["heads"]:
            raise ValueError(f"hf arch: hidden ({arch['hidden']}) must be a multiple of heads ({arch['heads']})")
        if "kv_heads" in arch and (arch["model_type"] not in _GQA or arch["heads"] % arch["kv_heads"]):
            raise ValueError(f"hf arch: kv_heads applies to {list(_GQA)} and must divide heads")
        return checked

    def input_sizes(self) -> tuple[int, ...]:
        return (16, 32, 64, 128)

    def build(self, config: ModelConfig) -> nn.Module:
        return HFClassifier(dict(config.arch))

    def example_input(self, config: ModelConfig) -> torch.Tensor:
        gen = torch.Generator().manual_seed(config.seed)
        return torch.randint(0, int(config.arch["vocab_size"]), (config.batch_size, config.input_size), generator=gen)

    def num_outputs(self, config: ModelConfig) -> int:
        return 2

    def forward_flops(self, config: ModelConfig) -> float:
        """Counted analytically (transformers' modules do not all run on the meta device): per token and
        layer, 2·(4h² + 2h·ffn) for projections and MLP (3h·ffn for gated MLPs), 4·seq·h for attention,
        plus the head; used for the dataset's FLOPs cap and request limits, never as a feature."""
        a = config.arch
        h, ffn, layers, seq = int(a["hidden"]), int(a["intermediate"]), int(a["layers"]), config.input_size
        mlp = 3 * h * ffn if a["model_type"] in _GQA else 2 * h * ffn
        per_token = layers * 2 * (4 * h * h + mlp + 2 * seq * h)
        return float(config.batch_size * seq * per_token)

    def param_count(self, config: ModelConfig) -> int:
        a = config.arch
        h, ffn, layers = int(a["hidden"]), int(a["intermediate"]), int(a["layers"])
        mlp = 3 * h * ffn if a["model_type"] in _GQA else 2 * h * ffn
        return int(layers * (4 * h * h + mlp) + int(a["vocab_size"]) * h)

    def size_bound(self, config: ModelConfig) -> tuple[int, float] | None:
        return self.param_count(config), self.forward_flops(config.with_batch(1))
