"""Training data: rows from the embedded world or JSONL files, tokenized with `datasets`.

A step-SFT row is `{"question": str, "steps": [str, ...]}` (the question goes through the
step format's prompt template) or `{"prompt": str, "steps": [...]}` (used verbatim).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Iterable

from datasets import Dataset, Features, List, Value

from engine.encoding import StepEncoder
from problems.datasets import DatasetError as DataError  # noqa: F401  (re-exported for the trainers)
from problems.datasets import read_jsonl, read_rows
from problems.step_data import parse_row
from trainers.losses import IGNORE_INDEX  # label value that the losses ignore


def _sft_rows(problem: Any, per_problem: int = 1) -> list[dict]:
    paths = [problem.steps] if per_problem == 1 else problem.solutions(per_problem)
    return [{"question": problem.question, "steps": list(steps)} for steps in paths]


def world_sft_rows(problems: Iterable[Any], workers: int = 1, per_problem: int = 1) -> list[dict]:
    """Reference solutions of embedded-world problems as step-SFT rows, `per_problem` for each
    (countdown draws each uniformly among all solutions, up to ~0.5 s a problem for the first,
    little more for the rest: `workers` processes share that)."""
    problems = list(problems)
    if per_problem > 1 and problems and not hasattr(problems[0], "solutions"):
        raise ValueError("this world has one reference solution per problem; use --solutions_per_problem 1")
    draw = functools.partial(_sft_rows, per_problem=per_problem)
    if workers <= 1:
        return [row for p in problems for row in draw(p)]
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return [row for rows in pool.map(draw, problems, chunksize=64) for row in rows]


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    """Write all rows or nothing: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # one per process: DDP ranks may write the same rows at once
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)


def row_prompt_ids(row: dict, encoder: StepEncoder) -> list[int]:
    """A row's prompt tokens: 'prompt' verbatim, or 'question' through the step format's template."""
    if "prompt" in row:
        return list(encoder.tokenizer(row["prompt"], add_special_tokens=True)["input_ids"])
    return list(encoder.prompt_ids(row["question"]))


def check_sft_row(row: dict, where: str) -> None:
    if not isinstance(row.get("prompt", row.get("question")), str):
        raise DataError(f"{where}: needs a string 'question' or 'prompt'")
    steps = row.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        raise DataError(f"{where}: 'steps' must be a non-empty list of strings")


def load_sft_jsonl(path: str | Path) -> list[dict]:
    rows = read_jsonl(path)
    for lineno, row in rows:
        check_sft_row(row, f"{path}:{lineno}")
    return [row for _, row in rows]


def tokenize_sft(row: dict, encoder: StepEncoder) -> dict:
    """prompt + step1 SEP ... stepK SEP EOS, with labels only on the response.

    labels[t] = input_ids[t] on response tokens and IGNORE_INDEX on the prompt. They are
    aligned with input_ids (not shifted): the causal-LM loss shifts them once, inside the
    model (logits[t] predicts labels[t + 1]).
    """
    prompt_ids = row_prompt_ids(row, encoder)
    response_ids = encoder.response_ids(row["steps"], finished=True)
    return {"input_ids": prompt_ids + response_ids, "labels": [IGNORE_INDEX] * len(prompt_ids) + response_ids}


def sft_dataset(rows: list[dict], encoder: StepEncoder, max_length: int, num_proc: int | None = None) -> Dataset:
    return _tokenized(rows, tokenize_sft, encoder, max_length, num_proc)


def _tokenized(rows: list[dict], tokenize, encoder: StepEncoder, max_length: int, num_proc: int | None = None) -> Dataset:
    """Tokenized dataset (num_proc processes); rows longer than max_length are dropped (with a count)."""
    features = Features({"input_ids": List(Value("int64")), "labels": List(Value("int64"))})
    ds = Dataset.from_list(rows).map(
        tokenize, fn_kwargs={"encoder": encoder}, remove_columns=list(rows[0].keys()), features=features, desc="tokenize",
        num_proc=num_proc,
    )
    kept = ds.filter(lambda ex: len(ex["input_ids"]) <= max_length, desc="length filter")
    if len(kept) < len(ds):
        print(f"dropped {len(ds) - len(kept)} of {len(ds)} rows longer than max_length={max_length}")
    if len(kept) == 0:
        raise DataError(f"every row is longer than max_length={max_length}")
    return kept


# -- PRM data: TRL's stepwise format {"prompt" or "question", "completions": [step, ...], "labels": [bool, ...]}


def check_prm_row(row: dict, where: str) -> None:
    if not isinstance(row.get("prompt", row.get("question")), str):
        raise DataError(f"{where}: needs a string 'question' or 'prompt'")
    steps, labels = row.get("completions"), row.get("labels")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        raise DataError(f"{where}: 'completions' must be a non-empty list of step strings")
    if not isinstance(labels, list) or not all(isinstance(x, bool) for x in labels):
        raise DataError(f"{where}: 'labels' must be a list of true/false")
    if len(labels) != len(steps):
        raise DataError(f"{where}: {len(steps)} completions but {len(labels)} labels")


def load_prm_jsonl(path: str | Path) -> list[dict]:
    """Stepwise rows as they are; ProcessBench, Math-Shepherd and PRM800K rows (and any file
    format problems.datasets reads) converted to stepwise by problems.step_data."""
    out = []
    for lineno, row in read_rows(Path(path)):
        where = f"{path}:{lineno}"
        if "completions" not in row:
            parsed = parse_row(row, where)
            row = {"question": parsed.question, "completions": parsed.steps, "labels": parsed.labels}
        check_prm_row(row, where)
        out.append(row)
    return out


def tokenize_prm(row: dict, encoder: StepEncoder) -> dict:
    """prompt + step1 SEP ... stepK SEP; the label token id sits AT each SEP position.

    labels[sep_k] = Positive or Negative id, IGNORE_INDEX elsewhere. trainers.losses.prm_loss
    reads logits at the same positions, without a shift.
    """
    ids, sep_positions = list(row_prompt_ids(row, encoder)), []
    for step in row["completions"]:
        ids.extend(encoder.step_ids(step))
        sep_positions.append(len(ids) - 1)  # SEP's last token
    labels = [IGNORE_INDEX] * len(ids)
    for pos, ok in zip(sep_positions, row["labels"], strict=True):
        labels[pos] = encoder.positive_id if ok else encoder.negative_id
    return {"input_ids": ids, "labels": labels}


def prm_dataset(rows: list[dict], encoder: StepEncoder, max_length: int, num_proc: int | None = None) -> Dataset:
    return _tokenized(rows, tokenize_prm, encoder, max_length, num_proc)
