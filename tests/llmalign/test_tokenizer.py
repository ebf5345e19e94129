"""The shared tokenizer: every task text round-trips, nothing is unknown, the saved file reloads the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmalign.arithmetic_task import sample_problem, solution
from llmalign.preference_task import all_prompts, base_response
from llmalign.tokenizer import (
    SPECIAL_TOKENS,
    decode_response,
    encode_pair,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
)


def test_task_texts_round_trip_without_unknown_tokens(tmp_path: Path) -> None:
    tokenizer = train_tokenizer()
    assert tokenizer.convert_ids_to_tokens(list(range(5))) == list(SPECIAL_TOKENS)
    rng = np.random.default_rng(0)
    pairs = [(p.text, base_response(p, rng)) for p in all_prompts()]
    pairs += [(q.text, solution(q)) for q in (sample_problem(rng, bool(i % 2)) for i in range(200))]
    for prompt, response in pairs:
        ids, start = encode_pair(tokenizer, prompt, response)
        assert tokenizer.unk_token_id not in ids
        assert ids[0] == tokenizer.bos_token_id
        assert ids[start - 1] == tokenizer.sep_token_id
        assert ids[-1] == tokenizer.eos_token_id
        assert decode_response(tokenizer, ids[start:]) == response
    # numbers are written digit by digit
    assert tokenizer.tokenize("42 + 7") == ["4", "2", "+", "7"]

    reloaded = load_tokenizer(tmp_path / "model") if save_tokenizer(tokenizer, tmp_path / "model") else None
    assert reloaded is not None
    for prompt, response in pairs[:20]:
        assert encode_pair(reloaded, prompt, response) == encode_pair(tokenizer, prompt, response)


def test_decoding_stops_at_the_end_token_and_skips_padding() -> None:
    tokenizer = train_tokenizer()
    ids, start = encode_pair(tokenizer, "1 + 2 =", "1 + 2 = 3 ; answer 3")
    padded = [tokenizer.pad_token_id, *ids[start:], *tokenizer.encode("answer 9", add_special_tokens=False)]
    assert decode_response(tokenizer, padded) == "1 + 2 = 3 ; answer 3"


def test_a_missing_tokenizer_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        load_tokenizer(tmp_path)
