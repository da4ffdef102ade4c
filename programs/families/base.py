"""The shape every task family shares: tasks, datasets, metrics and the simulated world.

A family generates seeded tasks of a chosen context size (2^10 to 2^23
characters); the same size and seed always give the same task. Its metric
follows DSPy's optimizer signature and, when GEPA asks for one predictor
(`pred_name`), returns a score with textual feedback.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from dspy_rlm.lms.simulated.world import SimulatedWorld

MIN_SIZE = 2**10
MAX_SIZE = 2**23


def check_size(size: int) -> int:
    """`size` if it is a whole number of characters in [2^10, 2^23]; else a clear ValueError."""
    if isinstance(size, bool) or not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be a whole number of characters from {MIN_SIZE:,} (2^10) to {MAX_SIZE:,} (2^23), "
                         f"got {size!r}")
    return size


def derive_seed(*parts: Any) -> int:
    """A seed that depends on every part (stable across runs and Python versions)."""
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


@dataclass(frozen=True)
class Task:
    """One generated task: the RLM's inputs, the gold answer, and gold facts for checking it."""

    context: str | list[str]
    query: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)

    def example(self) -> dspy.Example:
        """As a `dspy.Example` whose inputs are `context` and `query`."""
        return dspy.Example(context=self.context, query=self.query, answer=self.answer, **self.meta).with_inputs(
            "context", "query")


@dataclass(frozen=True)
class Splits:
    """Train, dev and test examples of one family."""

    train: list[dspy.Example]
    dev: list[dspy.Example]
    test: list[dspy.Example]

    def export_jsonl(self, directory: str | Path) -> dict[str, Path]:
        """Write `train.jsonl`, `dev.jsonl` and `test.jsonl` (one example per line); return the paths."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name in ("train", "dev", "test"):
            paths[name] = folder / f"{name}.jsonl"
            with paths[name].open("w", encoding="utf-8") as out:
                for example in getattr(self, name):
                    out.write(json.dumps(dict(example.toDict()), ensure_ascii=False) + "\n")
        return paths


def load_jsonl(path: str | Path) -> list[dspy.Example]:
    """Examples written by `Splits.export_jsonl`."""
    with Path(path).open(encoding="utf-8") as lines:
        return [dspy.Example(**json.loads(line)).with_inputs("context", "query") for line in lines if line.strip()]


class TaskFamily(ABC):
    """A seeded generator of tasks with a metric and a world for the simulated model."""

    name: str
    signature: str = "context, query -> answer"
    description: str = ""

    @abstractmethod
    def make_task(self, size: int, seed: int) -> Task:
        """One task whose context has about `size` characters."""

    @abstractmethod
    def score(self, gold: dspy.Example, answer: Any) -> tuple[float, str]:
        """The score in [0, 1] of `answer` for `gold`, and a sentence explaining it."""

    @abstractmethod
    def world(self) -> SimulatedWorld:
        """What the simulated model knows about this family."""

    def advice(self) -> str:
        """A hint for the feedback on weak runs: how this family is best solved."""
        return ""

    def dataset(self, n_train: int = 8, n_dev: int = 8, n_test: int = 16, size: int = 2**14,
                seed: int = 0) -> Splits:
        """Seeded, disjoint splits of `dspy.Example`s with contexts of about `size` characters."""
        check_size(size)

        def split(name: str, n: int) -> list[dspy.Example]:
            return [self.make_task(size, derive_seed(self.name, seed, name, i)).example() for i in range(n)]

        return Splits(split("train", n_train), split("dev", n_dev), split("test", n_test))

    def metric(self, gold: dspy.Example, pred: Any, trace: Any = None, pred_name: str | None = None,
               pred_trace: Any = None) -> float | dspy.Prediction:
        """DSPy metric: a float, or (with `pred_name`, as GEPA asks) `Prediction(score, feedback)`."""
        answer = getattr(pred, "answer", None) if pred is not None else None
        score, explanation = self.score(gold, answer) if answer is not None else (0.0, "The program gave no answer.")
        if pred_name is None:
            return float(score)
        return dspy.Prediction(score=float(score), feedback=self._feedback(score, explanation, pred))

    def _feedback(self, score: float, explanation: str, pred: Any) -> str:
        parts = [f"Score {score:.2f}. {explanation}"]
        notes = run_notes(pred)
        if notes:
            parts.append(notes)
        if score < 1.0 and self.advice():
            parts.append(self.advice())
        return " ".join(parts)


def run_notes(pred: Any) -> str:
    """What the RLM run did, from its trajectory and usage (for feedback)."""
    trajectory = getattr(pred, "trajectory", None) or []
    usage = getattr(pred, "usage", None) or {}
    if not trajectory:
        return ""
    codes = "\n".join(step.get("code", "") for step in trajectory)
    outputs = "\n".join(step.get("output", "") for step in trajectory)
    notes = [f"The run took {len(trajectory)} steps and {usage.get('sub_calls', 0)} sub-model calls."]
    if "budget exhausted" in outputs:
        notes.append("It ran out of sub-model calls before reading everything.")
    if "llm_query" not in codes:
        notes.append("Its code never asked the sub-model, so it read nothing beyond what code could find.")
    return " ".join(notes)
