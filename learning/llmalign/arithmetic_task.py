"""Multi-step arithmetic with verifiable final answers: the task PRIME is shown on.

A problem is a chain of 2-4 additions and subtractions of numbers below 50, ``17 + 25 - 8 =``, whose
running value never goes below zero. A solution works it left to right, one step per operation, then
states the answer:

    17 + 25 = 42 ; 42 - 8 = 34 ; answer 34

The verifier reads only the number after the last ``answer`` (the outcome label PRIME's implicit PRM is
trained from); `step_correctness` checks every step too, which no trainer sees (it is how the report
tells whether the process rewards point at the wrong step).

Train and held-out problems are apart by construction: a problem is held out when the sum of its
operands is divisible by 7, so no held-out problem is ever a training problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

MAX_OPERAND = 49
MIN_TERMS, MAX_TERMS = 2, 4
ANSWER_WORD = "answer"
STEP_SEPARATOR = ";"
HELD_OUT_MODULUS = 7


@dataclass(frozen=True)
class ArithmeticProblem:
    """``operands[0] ops[0] operands[1] ops[1] ... =``."""

    operands: tuple[int, ...]
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != len(self.operands) - 1 or not self.ops:
            raise ValueError("a problem needs at least two operands and one operator between each pair")
        if any(op not in "+-" for op in self.ops):
            raise ValueError(f"operators are + and -, got {self.ops}")

    @classmethod
    def parse(cls, text: str) -> ArithmeticProblem:
        """The problem a prompt states (``17 + 25 - 8 =``; ValueError if it states none)."""
        words = text.split()
        if len(words) < 4 or words[-1] != "=" or len(words) % 2:
            raise ValueError(f"not an arithmetic prompt: {text!r}")
        try:
            operands = tuple(int(w) for w in words[0:-1:2])
        except ValueError:
            raise ValueError(f"not an arithmetic prompt: {text!r}") from None
        return cls(operands, tuple(words[1:-1:2]))

    @property
    def text(self) -> str:
        """The prompt as the model reads it."""
        parts = [str(self.operands[0])]
        for op, value in zip(self.ops, self.operands[1:], strict=True):
            parts += [op, str(value)]
        return " ".join([*parts, "="])

    @property
    def answer(self) -> int:
        """The value of the chain."""
        return self.partial_values()[-1]

    def partial_values(self) -> list[int]:
        """The running value after each operation."""
        values, total = [], self.operands[0]
        for op, value in zip(self.ops, self.operands[1:], strict=True):
            total = total + value if op == "+" else total - value
            values.append(total)
        return values

    @property
    def held_out(self) -> bool:
        """True for the held-out split (operand sum divisible by 7)."""
        return sum(self.operands) % HELD_OUT_MODULUS == 0


def solution(problem: ArithmeticProblem) -> str:
    """The worked solution (what the SFT data teaches)."""
    steps, left = [], problem.operands[0]
    for op, value, result in zip(problem.ops, problem.operands[1:], problem.partial_values(), strict=True):
        steps.append(f"{left} {op} {value} = {result}")
        left = result
    return f" {STEP_SEPARATOR} ".join(steps) + f" {STEP_SEPARATOR} {ANSWER_WORD} {problem.answer}"


def sample_problem(rng: np.random.Generator, held_out: bool) -> ArithmeticProblem:
    """A random problem of the requested split (the running value stays >= 0)."""
    while True:
        terms = int(rng.integers(MIN_TERMS, MAX_TERMS + 1))
        operands = [int(rng.integers(1, MAX_OPERAND + 1))]
        ops: list[str] = []
        total = operands[0]
        for _ in range(terms - 1):
            value = int(rng.integers(1, MAX_OPERAND + 1))
            op = "-" if value <= total and rng.random() < 0.5 else "+"
            total = total + value if op == "+" else total - value
            operands.append(value)
            ops.append(op)
        problem = ArithmeticProblem(tuple(operands), tuple(ops))
        if problem.held_out == held_out:
            return problem


_ANSWER = re.compile(rf"{ANSWER_WORD}\s+(-?\d+)")
_STEP = re.compile(r"^\s*(-?\d+)\s*([+-])\s*(\d+)\s*=\s*(-?\d+)\s*$")


def final_answer(response: str) -> int | None:
    """The number after the last ``answer`` in a response (None when there is none)."""
    found = _ANSWER.findall(response)
    return int(found[-1]) if found else None


def is_correct(problem: ArithmeticProblem, response: str) -> bool:
    """The verifier: the final answer equals the problem's value."""
    return final_answer(response) == problem.answer


def step_correctness(problem: ArithmeticProblem, response: str) -> list[bool]:
    """For each expected step, whether the response's step at that place is present and right."""
    pieces = [p for p in response.split(STEP_SEPARATOR) if ANSWER_WORD not in p]
    marks = []
    left = problem.operands[0]
    for index, (op, value, result) in enumerate(
        zip(problem.ops, problem.operands[1:], problem.partial_values(), strict=True)
    ):
        match = _STEP.match(pieces[index]) if index < len(pieces) else None
        marks.append(
            bool(match)
            and match is not None
            and (int(match.group(1)), match.group(2), int(match.group(3)), int(match.group(4)))
            == (left, op, value, result)
        )
        left = result
    return marks


__all__ = [
    "ANSWER_WORD",
    "STEP_SEPARATOR",
    "ArithmeticProblem",
    "final_answer",
    "is_correct",
    "sample_problem",
    "solution",
    "step_correctness",
]
