"""The compute-optimal report (Snell et al., 2024) from a --compare directory's summaries.

For each budget n, the best strategy for each difficulty (its accuracy on that difficulty's
problems); together they make the compute-optimal point at n: the problem-weighted accuracy,
and the generated tokens per problem those choices spend. The points form the frontier, which
`evals.run --compare` draws in compare.png and tabulates in compare.md, with the first budget at
which the frontier matches majority@64 and the compute it saves there (majority@64's tokens over
the frontier's). Strategies that have no budget (greedy, greedy_retry) count at every n.

The strategy per difficulty is chosen on the very problems it is scored on, so the frontier is
an upper bound; choose on the dev split and score on test for an unbiased one.
"""

from __future__ import annotations


def compute_optimal(summaries: list[dict], reference: tuple[str, int] = ("majority", 64)) -> dict:
    """{"frontier": [{n, accuracy, generated_tokens_per_problem, choice: {difficulty: strategy}}],
    "reference": the reference run's summary or None, "matches": the first frontier point at least
    as accurate as it, "compute_ratio": reference tokens / that point's tokens}."""
    with_difficulty = [s for s in summaries if s.get("accuracy_by_difficulty") and s.get("generated_tokens_by_difficulty")]
    budgets = sorted({s["n"] for s in with_difficulty if s["strategy"] not in ("greedy", "greedy_retry")})
    frontier = []
    for n in budgets:
        runs = [s for s in with_difficulty if s["n"] == n or s["strategy"] in ("greedy", "greedy_retry")]
        counts = runs[0]["problems_by_difficulty"]
        total = sum(counts.values())
        choice, accuracy, tokens = {}, 0.0, 0.0
        for d, count in counts.items():
            best = max(runs, key=lambda s: (s["accuracy_by_difficulty"].get(d, -1.0), -s["generated_tokens_by_difficulty"].get(d, 0.0)))
            choice[d] = f"{best['strategy']}@{best['n']}"
            accuracy += count / total * best["accuracy_by_difficulty"][d]
            tokens += count / total * best["generated_tokens_by_difficulty"][d]
        frontier.append({"n": n, "accuracy": accuracy, "generated_tokens_per_problem": tokens, "choice": choice})
    ref = next((s for s in summaries if (s["strategy"], s["n"]) == reference), None)
    matches = next((f for f in frontier if ref is not None and f["accuracy"] >= ref["accuracy"]), None)
    ratio = ref["generated_tokens_per_problem"] / matches["generated_tokens_per_problem"] if matches and matches["generated_tokens_per_problem"] else None
    return {"frontier": frontier, "reference": ref, "matches": matches, "compute_ratio": ratio}


def frontier_table(optimal: dict) -> str:
    lines = ["Compute-optimal frontier (the best strategy per difficulty at each budget; chosen on these problems: an upper bound):", "",
             "| n | accuracy | gen tokens/problem | strategy per difficulty |", "|---|---|---|---|"]
    for f in optimal["frontier"]:
        lines.append(f"| {f['n']} | {f['accuracy']:.1%} | {f['generated_tokens_per_problem']:.0f} | "
                     + ", ".join(f"{d}: {c}" for d, c in f["choice"].items()) + " |")
    ref, m = optimal["reference"], optimal["matches"]
    if ref is None:
        lines.append("\nNo majority@64 run to compare with.")
    elif m is None:
        lines.append(f"\nThe frontier never matches majority@64 ({ref['accuracy']:.1%}).")
    else:
        lines.append(f"\nThe frontier first matches majority@64 ({ref['accuracy']:.1%}, {ref['generated_tokens_per_problem']:.0f} tokens) at n={m['n']} "
                     f"({m['accuracy']:.1%}, {m['generated_tokens_per_problem']:.0f} tokens): {optimal['compute_ratio']:.1f}x less generation.")
    return "\n".join(lines)
