"""The word-level tokenizer both tasks share, trained here with `tokenizers` and used through transformers.

Words split on whitespace, numbers into single digits (so the model adds digit by digit), and five
special tokens. The vocabulary is closed (every word of both tasks, the ten digits, + - = ;), so the
tokenizer is trained on a corpus that lists them and nothing is ever unknown in task text. Saved as
`tokenizer.json` (plain JSON, never unpickled) inside a model folder.

A sequence is ``<bos> prompt <sep> response <eos>``; the loss of every trainer covers the response and
its ``<eos>`` only.
"""

from __future__ import annotations

import re
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from llmalign.arithmetic_task import ANSWER_WORD, STEP_SEPARATOR
from llmalign.preference_task import AUDIENCE_LENGTH, RESPONSE_VOCABULARY, TOPIC_WORDS

PAD, BOS, EOS, UNK, SEP = "<pad>", "<bos>", "<eos>", "<unk>", "<sep>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, SEP)
_SPACED_DIGITS = re.compile(r"(?<=\d) (?=\d)")


def task_words() -> list[str]:
    """Every word either task writes, specials excluded."""
    prompt_words = ["describe", "for", "with", *TOPIC_WORDS, *AUDIENCE_LENGTH]
    arithmetic = [str(d) for d in range(10)] + ["+", "-", "=", STEP_SEPARATOR, ANSWER_WORD]
    return sorted(set(prompt_words) | set(RESPONSE_VOCABULARY) | set(arithmetic))


def train_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the tasks' closed vocabulary (ids 0-4 are the specials, in SPECIAL_TOKENS order)."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins tokens with single spaces
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1, show_progress=False)
    tokenizer.train_from_iterator([" ".join(task_words())], trainer=trainer)
    return wrap(tokenizer)


def wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """transformers' view of a `tokenizers` tokenizer, with this package's special tokens."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        sep_token=SEP,
        padding_side="left",
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: Path) -> Path:
    """Write `tokenizer.json` into `folder` (created if missing); returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenizer.json"
    tokenizer.backend_tokenizer.save(str(path))
    return path


def load_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    """The tokenizer saved in `folder` (FileNotFoundError naming the file when it is missing)."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer at {path}")
    return wrap(Tokenizer.from_file(str(path)))


def encode_pair(tokenizer: PreTrainedTokenizerFast, prompt: str, response: str) -> tuple[list[int], int]:
    """Token ids of ``<bos> prompt <sep> response <eos>`` and the index where the response starts."""
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    response_ids = tokenizer.encode(response, add_special_tokens=False)
    head = [tokenizer.bos_token_id, *prompt_ids, tokenizer.sep_token_id]
    return [*head, *response_ids, tokenizer.eos_token_id], len(head)


def decode_response(tokenizer: PreTrainedTokenizerFast, ids: list[int]) -> str:
    """Text of generated response ids: stops at ``<eos>``, drops padding, joins the digits of numbers."""
    kept = []
    for token in ids:
        if token == tokenizer.eos_token_id:
            break
        if token != tokenizer.pad_token_id:
            kept.append(token)
    text = str(tokenizer.decode(kept, skip_special_tokens=True))
    return _SPACED_DIGITS.sub("", " ".join(text.split()))


__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "SEP",
    "SPECIAL_TOKENS",
    "UNK",
    "decode_response",
    "encode_pair",
    "load_tokenizer",
    "save_tokenizer",
    "task_words",
    "train_tokenizer",
    "wrap",
]
