"""Greedy decoding of the policy on the embedded world, and its accuracy per operand count.

    python -m evals.greedy                      # shipped policy, arith test split
    python -m evals.greedy --policy DIR --split dev --limit 100 --show 5

This is the plain transformers path (batched `generate`), which the trainers use for
their own evaluation; the vLLM engine serves the search strategies. If the default policy
directory is missing it is trained first with the default step-SFT recipe.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from typing import Sequence

import torch

from engine.format import ARITH_FORMAT, StepFormat
from engine.models import DEFAULT_POLICY, REPO_ROOT, ModelDirError, load_tokenizer
from evals.tasks import arith


@torch.no_grad()
def greedy_steps(model, tokenizer, fmt: StepFormat, questions: Sequence[str], max_new_tokens: int = 256, batch_size: int = 128) -> list[list[str]]:
    """Greedy responses to the questions, split into steps."""
    eos_id = tokenizer.convert_tokens_to_ids(fmt.eos)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation needs left padding
    results = []
    try:
        for start in range(0, len(questions), batch_size):
            prompts = [fmt.prompt(q) for q in questions[start : start + batch_size]]
            batch = tokenizer(prompts, return_tensors="pt", padding=True)
            out = model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos_id, pad_token_id=tokenizer.pad_token_id
            )
            for row in out[:, batch["input_ids"].shape[1] :]:
                results.append(fmt.split_steps(tokenizer.decode(row, skip_special_tokens=False)))
    finally:
        tokenizer.padding_side = side
    return results


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of a proportion (Wilson score)."""
    if total == 0:
        return (0.0, 1.0)
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def accuracy_by_difficulty(problems: Sequence, correct: Sequence[bool]) -> dict:
    """{'all': {...}, '2': {...}, ...} with correct, total, accuracy and its 95% interval, per difficulty."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for problem, ok in zip(problems, correct):
        groups[str(problem.difficulty)].append(ok)
        groups["all"].append(ok)
    report = {}
    for key in ["all"] + sorted((k for k in groups if k != "all"), key=int):
        c, n = sum(groups[key]), len(groups[key])
        lo, hi = wilson_interval(c, n)
        report[key] = {"correct": c, "total": n, "accuracy": round(c / n, 4), "ci95": [round(lo, 4), round(hi, 4)]}
    return report


def greedy_report(model, tokenizer, fmt: StepFormat, problems: Sequence, world=arith) -> dict:
    """Greedy accuracy of a transformers model on an embedded world's problems, by difficulty."""
    was_training = model.training
    model.eval()
    steps = greedy_steps(model, tokenizer, fmt, [p.question for p in problems])
    model.train(was_training)
    return accuracy_by_difficulty(problems, [bool(s) and world.solved(p.question, s) for p, s in zip(problems, steps)])


def format_report(report: dict) -> str:
    lines = ["| operands | accuracy | 95% CI | correct/total |", "|---|---|---|---|"]
    for key, r in report.items():
        lines.append(f"| {key} | {r['accuracy']:.1%} | {r['ci95'][0]:.1%}–{r['ci95'][1]:.1%} | {r['correct']}/{r['total']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default=str(DEFAULT_POLICY), help="policy model directory (default: the shipped policy)")
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"], help="arith split")
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument("--show", type=int, default=3, help="print this many samples")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args(argv)

    from transformers import AutoModelForCausalLM

    if args.policy == str(DEFAULT_POLICY) and not DEFAULT_POLICY.is_dir():
        from trainers.step_sft import main as train_default

        # the shipped policy's two stages (README: Training the default policy)
        stage1 = REPO_ROOT / "runs" / "policy24"
        print(f"no policy at {DEFAULT_POLICY}: training the default one in two stages (about 50 minutes on 2 CPU cores)")
        train_default(["--output_dir", str(stage1)])
        train_default(["--init_model", str(stage1), "--train_operands", "2-6", "--max_steps", "2000", "--learning_rate", "3e-4",
                       "--warmup_steps", "100", "--output_dir", str(DEFAULT_POLICY)])
    fmt = ARITH_FORMAT
    try:
        tokenizer = load_tokenizer(args.policy, fmt, "policy")
    except ModelDirError as e:
        sys.exit(f"error: {e}")
    model = AutoModelForCausalLM.from_pretrained(args.policy, dtype=torch.float32).eval()
    problems = arith.load_split(args.split)[: args.limit]
    steps = greedy_steps(model, tokenizer, fmt, [p.question for p in problems], args.max_new_tokens)
    for problem, s in list(zip(problems, steps))[: args.show]:
        print(f"{fmt.prompt(problem.question)}  ->  {' | '.join(s)}   (reference answer {problem.answer})")
    report = accuracy_by_difficulty(problems, [bool(s) and arith.solved(p.question, s) for p, s in zip(problems, steps)])
    print(f"\ngreedy accuracy, {args.policy}, arith {args.split} split ({len(problems)} problems):")
    print(format_report(report))


if __name__ == "__main__":
    main()
