"""Greedy decoding of a policy on an embedded world with transformers, and its accuracy per difficulty.

    python -m evals.greedy                      # shipped policy, arith test split
    python -m evals.greedy --policy DIR --split dev --limit 100 --show 5
    python -m evals.greedy --world countdown --policy models/countdown-policy

This is the plain transformers path (trainers.greedy, which the trainers use for their own
evaluation); the vLLM engine serves the search strategies (`evals.run --strategy greedy`).
"""

from __future__ import annotations

import argparse
import sys

from engine.encoding import StepEncoder
from engine.format import StepFormat
from engine.models import DEFAULT_POLICY, ModelDirError
from problems.metrics import accuracy_by_difficulty
from problems.worlds import WORLDS, get_world


def format_report(report: dict, unit: str = "operands") -> str:
    lines = [f"| {unit} | accuracy | 95% CI | correct/total |", "|---|---|---|---|"]
    for key, r in report.items():
        lines.append(f"| {key} | {r['accuracy']:.1%} | {r['ci95'][0]:.1%}–{r['ci95'][1]:.1%} | {r['correct']}/{r['total']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default=str(DEFAULT_POLICY), help="policy model directory (default: the shipped arith policy)")
    parser.add_argument("--world", default="arith", choices=sorted(WORLDS))
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    parser.add_argument("--show", type=int, default=3, help="print this many samples")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from trainers.greedy import greedy_steps

    fmt, world = StepFormat(), get_world(args.world)  # this project's step format: both worlds' shipped policies speak it
    try:
        encoder = StepEncoder.load(args.policy, fmt, "policy")
    except ModelDirError as e:  # an eval command never trains: it says which command would
        sys.exit(f"error: {e} (to train one: python -m trainers.step_sft --world {args.world} --output_dir {args.policy}; README: Training the default policy)")
    model = AutoModelForCausalLM.from_pretrained(args.policy, dtype=torch.float32).eval()
    problems = world.load_split(args.split)[: args.limit]
    steps = greedy_steps(model, encoder, [p.question for p in problems], args.max_new_tokens)
    for problem, s in list(zip(problems, steps))[: args.show]:
        print(f"{fmt.prompt(problem.question)}  ->  {' | '.join(s)}   (reference answer {problem.answer})")
    report = accuracy_by_difficulty(problems, [bool(s) and world.solved(p.question, s) for p, s in zip(problems, steps)])
    print(f"\ngreedy accuracy, {args.policy}, {args.world} {args.split} split ({len(problems)} problems):")
    print(format_report(report, world.DIFFICULTY))


if __name__ == "__main__":
    main()
