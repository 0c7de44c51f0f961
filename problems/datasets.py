"""Problems to search on: the embedded arith splits, or a user's dataset file.

    load_problems("arith-test")            # an embedded world (exact grading): arith-*, countdown-{train,dev,test}
    load_problems("data/gsm8k.jsonl")      # rows {"question": ..., "answer": ...} (GSM8K "#### 42" or MATH "\\boxed{}")
    load_problems("data/math500.parquet")  # .parquet/.csv/.json or a datasets.save_to_disk directory, read with `datasets`
    load_problems("champ")                 # CHAMP's 270 competition problems (PyPI champ-dataset); "champ-numeric": the 89 with numeric answers

A problem has `id`, `question`, `answer` and `grade(answer_text) -> bool`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from engine.answers import answers_match, normalize, to_number
from problems import arith
from problems.worlds import WORLDS, get_world

WORLD_DATASETS = {f"{name}-{split}": (name, split) for name in WORLDS for split in ("train", "dev", "test")}


class DatasetError(ValueError):
    pass


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str
    difficulty: int | None = None  # embedded worlds: what the world's DIFFICULTY counts
    world: str | None = None  # an embedded world's name (problems.worlds), or None for a user dataset

    def grade(self, answer_text: str | None, path=None) -> bool:
        """An embedded world grades the whole path with its own grader (countdown checks every
        step); a user dataset compares the final answer with the reference."""
        if self.world is not None:
            world = get_world(self.world)
            if path is not None:
                return world.solved(self.question, path.steps, path.finished)
            if self.world == "arith":  # arith grades the answer alone
                return answer_text is not None and arith.parse_answer(answer_text) == int(self.answer)
            raise ValueError(f"a {self.world} problem is graded on its whole path: pass the path")
        return answers_match(answer_text, self.answer)


def read_jsonl(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a clear error names the bad line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append((lineno, row))
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows


DATASETS_FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json"}


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line or row number, row) from a JSONL file, or through `datasets` from another format."""
    if path.is_file() and path.suffix == ".jsonl":
        return read_jsonl(path)
    import datasets

    try:
        if path.is_dir():
            ds = datasets.load_from_disk(str(path))
        else:
            ds = datasets.load_dataset(DATASETS_FORMATS[path.suffix], data_files=str(path), split="train")
    except Exception as e:  # datasets raises many kinds; say which file and why
        raise DatasetError(f"{path}: could not be read with datasets ({type(e).__name__}: {str(e)[:200]})") from None
    if isinstance(ds, datasets.DatasetDict):
        raise DatasetError(f"{path}: holds several splits ({', '.join(ds)}); point at one of them")
    return [(i, row) for i, row in enumerate(ds, 1)]


def load_problems(spec: str) -> list[Problem]:
    if spec in ("champ", "champ-numeric"):  # CHAMP's competition problems (PyPI champ-dataset)
        return champ_problems(numeric_only=spec == "champ-numeric")
    if spec in WORLD_DATASETS:
        name, split = WORLD_DATASETS[spec]
        return [Problem(p.id, p.question, str(p.answer), p.difficulty, name) for p in get_world(name).load_split(split)]
    path = Path(spec)
    if not (path.is_file() and path.suffix in {".jsonl", *DATASETS_FORMATS}) and not path.is_dir():
        raise DatasetError(f"unknown dataset {spec!r}: not one of {sorted(WORLD_DATASETS)}, champ, champ-numeric, a .jsonl/.json/.parquet/.csv file or a saved datasets directory")
    problems, seen = [], set()
    for lineno, row in read_rows(path):
        question = row.get("question", row.get("problem"))
        answer = row.get("answer", row.get("solution"))
        if not isinstance(question, str) or not question.strip():
            raise DatasetError(f"{path}:{lineno}: needs a non-empty string 'question' (or 'problem')")
        if isinstance(answer, (int, float)):
            answer = str(answer)
        if not isinstance(answer, str) or not answer.strip():
            raise DatasetError(f"{path}:{lineno}: needs a string or number 'answer' (or 'solution')")
        pid = str(row.get("id", f"{path.stem}-{lineno}"))
        if pid in seen:
            raise DatasetError(f"{path}:{lineno}: duplicate id {pid!r}")
        seen.add(pid)
        problems.append(Problem(pid, question, answer))
    return problems


def champ_problems(numeric_only: bool = False) -> list[Problem]:
    """CHAMP's 270 problems, for evals.run --dataset champ (or champ-numeric).

    Its answers are free-form ("C(10, 5), or equivalently 252", "2^(n-1)", "No"); where one
    gives an equivalent or approximate form, the graded answer is the form that is a number
    (the exact one if both are: "5/14, or approximately 35.7%" grades as 5/14).
    numeric_only: only the problems whose answer is then a number (the reliably graded ones).
    """
    problems = []
    for pid, p in champ().problems.items():
        answer = p.answer
        alternative = re.search(r",\s*or (?:equivalently|approximately)\s+(.+)$", answer)
        if alternative:  # keep the exact form if it is a number, else take the stated number
            head = answer[: alternative.start()]
            if to_number(normalize(head)) is not None:
                answer = head
            elif to_number(normalize(alternative.group(1))) is not None:
                answer = alternative.group(1)
        if not numeric_only or to_number(normalize(answer)) is not None:
            problems.append(Problem(pid, p.text, answer))
    return problems


@lru_cache(maxsize=1)
def champ():  # the 72 MB JSON, read once
    try:
        import champ_dataset
    except ImportError:
        raise DatasetError("CHAMP needs the PyPI package champ-dataset (pip install champ-dataset)") from None
    return champ_dataset.load("v0")
