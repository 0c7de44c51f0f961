"""Benchmarks: speed ratios against the baselines a user would otherwise use.

    python -m evals.bench                                   # all of them, shipped models, arith test problems
    python -m evals.bench --only overhead,prefix --problems 32 --output runs/bench

Both sides of every comparison run in this one process, on the same models and problems,
and the reports are ratios (these machines are noisy):
  overhead  tokens/s of a full beam search (engine + strategy, PRM time taken out) vs raw
            vLLM `generate` replaying the very same batches;
  prefix    scoring every step of a depth-8 beam search (9-operand problems) with the
            prefix-cached scorers vs recomputing every path in full (caches cleared, vLLM's
            prefix cache off), tokens and wall time, next to the theoretical ratio;
  notebook  the classic notebook greedy PRM search (transformers, one token at a time, the
            PRM re-run over the whole sequence after every step, one problem at a time) vs
            our batched greedy_retry;
  sal       a search-and-learn-style beam search (vLLM generation, the PRM re-scoring full
            prefixes with transformers each step) vs our engine, same beam configuration;
  scaling   wall time and tokens of beam search vs n and vs the number of problems.
Writes bench.md, bench.json and scaling.png to --output.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from engine import HFPRM, VLLMPRM, EngineConfig, Policy, StepPath
from engine.models import DEFAULT_POLICY, DEFAULT_PRM
from engine.prm import RecordingPRM
from problems import arith
from problems.datasets import load_problems
from strategies import SearchConfig, get_strategy


def accuracy(problems, results) -> float:
    return sum(p.grade(r.answer) for p, r in zip(problems, results)) / len(problems)


def fresh(policy: Policy, *scorers) -> None:
    """Forget every cache, so each side of a comparison starts cold."""
    for engine in (policy, *scorers):
        engine.reset_caches()


class FullRecompute:
    """A PRM that recomputes every path in full every call, as search-and-learn-style loops do.

    Wraps a scorer whose caches are cleared before each call; for the vLLM scorer pass one
    built with prefix caching off (`no_cache_vllm_prm`), since vLLM would otherwise reuse
    the blocks of one call's shorter prefixes for its longer ones."""

    def __init__(self, scorer):
        self.scorer, self.fmt = scorer, scorer.fmt

    def score(self, paths):
        self.scorer.reset_caches()
        return self.scorer.score(paths)


def no_cache_vllm_prm(model_dir) -> VLLMPRM:
    return VLLMPRM(model_dir, config=EngineConfig(extra={"enable_prefix_caching": False}))


# -- 1. search overhead -------------------------------------------------------------------


def bench_overhead(problems, policy, prm, cfg, repeats: int = 3) -> dict:
    """Search vs raw replay of its generate calls, `repeats` times in turn; the median trial is reported."""
    get_strategy("beam").search(problems[:4], policy, prm, cfg)  # warm both engines up first: the timed runs are steady-state
    trials = []
    for _ in range(repeats):
        fresh(policy, prm)
        with policy.recording() as calls:
            t0 = time.perf_counter()
            results = get_strategy("beam").search(problems, policy, prm, cfg)
            wall = time.perf_counter() - t0
        prm_seconds = sum(r.cost.prm_seconds for r in results)
        tokens = sum(r.cost.generated_tokens for r in results)
        fresh(policy, prm)
        t0 = time.perf_counter()
        raw_tokens = policy.replay(calls)
        raw = time.perf_counter() - t0
        search_tps, raw_tps = tokens / (wall - prm_seconds), raw_tokens / raw
        trials.append({"generate_calls": len(calls), "search_tokens": round(tokens), "raw_tokens": raw_tokens, "search_seconds_without_prm": wall - prm_seconds,
                       "prm_seconds": prm_seconds, "raw_seconds": raw, "search_tokens_per_s": search_tps, "raw_tokens_per_s": raw_tps,
                       "ratio": search_tps / raw_tps, "target": ">= 0.9"})
    trials.sort(key=lambda t: t["ratio"])
    return {**trials[len(trials) // 2], "ratios": [t["ratio"] for t in trials]}


# -- 2. PRM prefix caching -----------------------------------------------------------------


def recorded_score_calls(problems, policy, prm, cfg) -> list[list[StepPath]]:
    recorder = RecordingPRM(prm)
    get_strategy("beam").search(problems, policy, recorder, cfg)
    return recorder.calls


def bench_prefix(problems, policy, scorers: dict, cfg) -> dict:
    """scorers: name -> (prefix-cached scorer, the same model with no caching)."""
    calls = recorded_score_calls(problems, policy, scorers["vllm"][0], cfg)
    report = {"score_calls": len(calls), "max_depth": max(len(p.steps) for c in calls for p in c)}
    for name, (scorer, uncached) in scorers.items():
        for mode, prm in (("cached", scorer), ("full", FullRecompute(uncached))):
            scorer.reset_caches()
            uncached.reset_caches()
            computed = requested = 0
            t0 = time.perf_counter()
            for paths in calls:
                cost = prm.score(paths).cost
                computed += cost.prm_tokens_computed
                requested += cost.prm_tokens_requested
            report[f"{name}_{mode}"] = {"seconds": time.perf_counter() - t0, "tokens_computed": computed, "tokens_requested": requested}
        cached, full = report[f"{name}_cached"], report[f"{name}_full"]
        theory = full["tokens_computed"] / max(cached["tokens_computed"], 1)
        gain = full["seconds"] / cached["seconds"]
        report[f"{name}_token_ratio"], report[f"{name}_wall_ratio"] = theory, gain
        report[f"{name}_wall_gain_share_of_theory"] = (gain - 1) / (theory - 1) if theory > 1 else None
    report["target"] = "wall-time gain >= 70% of the theoretical token ratio"
    return report


# -- 3. the classic notebook greedy PRM search ----------------------------------------------


@torch.no_grad()
def notebook_search(problem, model, prm_model, encoder, prm_encoder, threshold: float, max_retries: int, max_steps: int, max_step_tokens: int,
                    temperature: float) -> str | None:
    """The course notebook's loop, faithfully naive: one problem, one token per full forward pass,
    and after each step the PRM re-reads the whole sequence."""
    steps: list[str] = []
    for _ in range(max_steps):
        for attempt in range(max_retries + 1):
            ids, _ = encoder.path_ids(problem.question, steps)
            new: list[int] = []
            while len(new) < max_step_tokens:
                logits = model(torch.tensor([ids + new], device=model.device)).logits[0, -1]  # no KV cache
                token = torch.multinomial(torch.softmax(logits / temperature, -1), 1).item()
                new.append(token)
                if token in (encoder.sep_id, encoder.eos_id):
                    break
            if new and new[-1] == encoder.eos_id:
                return steps[-1] if steps else None
            step = encoder.decode([t for t in new if t != encoder.sep_id])
            full, seps = prm_encoder.path_ids(problem.question, steps + [step])
            logits = prm_model(torch.tensor([full], device=prm_model.device)).logits[0, seps[-1]]  # the PRM re-reads everything
            p = torch.softmax(logits[[prm_encoder.positive_id, prm_encoder.negative_id]], -1)[0].item()
            if p >= threshold or attempt == max_retries:
                steps.append(step)
                break
    return steps[-1] if steps else None


def bench_notebook(problems, policy, prm, hf_prm, cfg) -> dict:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(policy.model_dir)).to(hf_prm.device).eval()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    answers = [notebook_search(p, model, hf_prm.model, policy.encoder, hf_prm.encoder, cfg.threshold, cfg.max_retries_per_step, cfg.max_steps,
                               cfg.max_step_tokens, cfg.temperature) for p in problems]
    notebook = time.perf_counter() - t0
    fresh(policy, prm)
    t0 = time.perf_counter()
    results = get_strategy("greedy_retry").search(problems, policy, prm, cfg)
    ours = time.perf_counter() - t0
    return {"problems": len(problems), "notebook_seconds": notebook, "ours_seconds": ours, "speedup": notebook / ours,
            "notebook_accuracy": sum(p.grade(a) for p, a in zip(problems, answers)) / len(problems),
            "ours_accuracy": accuracy(problems, results), "target": ">= 20x"}


# -- 4. a search-and-learn-style loop ---------------------------------------------------------


def bench_sal(problems, policy, prm, hf_prm, cfg) -> dict:
    report = {}
    for name, scorer in (("sal_full_hf", FullRecompute(hf_prm)), ("ours_vllm", prm), ("ours_hf", hf_prm)):
        fresh(policy, prm, hf_prm)
        t0 = time.perf_counter()
        results = get_strategy("beam").search(problems, policy, scorer, cfg)
        report[name] = {"seconds": time.perf_counter() - t0, "accuracy": accuracy(problems, results)}
    report["speedup_vllm"] = report["sal_full_hf"]["seconds"] / report["ours_vllm"]["seconds"]
    report["speedup_hf"] = report["sal_full_hf"]["seconds"] / report["ours_hf"]["seconds"]
    report["target"] = ">= 3x at equal accuracy"
    return report


# -- 5. scaling ------------------------------------------------------------------------------


def bench_scaling(problems, policy, prm, cfg, ns, counts) -> dict:
    from dataclasses import replace

    rows = []
    for n, count in [(n, counts[0]) for n in ns] + [(ns[0], c) for c in counts[1:]]:
        fresh(policy, prm)
        subset = problems[:: max(1, len(problems) // count)][:count]  # every difficulty at every count
        t0 = time.perf_counter()
        results = get_strategy("beam").search(subset, policy, prm, replace(cfg, n=n, beam_width=min(cfg.beam_width, n)))
        rows.append({"n": n, "problems": len(subset), "seconds": time.perf_counter() - t0,
                     "generated_tokens": round(sum(r.cost.generated_tokens for r in results)),
                     "prm_tokens_computed": round(sum(r.cost.prm_tokens_computed for r in results)), "accuracy": accuracy(subset, results)})
    return {"rows": rows}


def plot_scaling(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, fixed in ((axes[0], "n", "problems"), (axes[1], "problems", "n")):
        base = rows[0][fixed]
        pts = sorted((r[key], r["seconds"], r["generated_tokens"]) for r in rows if r[fixed] == base)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label="wall s")
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in pts], [p[2] for p in pts], marker="s", color="tab:orange", label="generated tokens")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"{key} ({fixed}={base})")
        ax.set_ylabel("wall seconds")
        ax2.set_ylabel("generated tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="overhead,prefix,notebook,sal,scaling", help="comma-separated subset")
    parser.add_argument("--policy", default=str(DEFAULT_POLICY))
    parser.add_argument("--prm", default=str(DEFAULT_PRM))
    parser.add_argument("--dataset", default="arith-test")
    parser.add_argument("--problems", type=int, default=48, help="problems per comparison (spread over the dataset)")
    parser.add_argument("--notebook-problems", type=int, default=48, help="problems for the notebook comparison (it runs them one at a time)")
    parser.add_argument("--prefix-operands", type=int, default=9, help="prefix benchmark: fresh problems of this many operands (9: depth-8 paths)")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--beam-width", type=int, default=4)
    parser.add_argument("--scaling-n", default="4,16,64,256")
    parser.add_argument("--scaling-problems", default="16,64,256")
    parser.add_argument("--output", default="runs/bench")
    args = parser.parse_args(argv)

    everything = load_problems(args.dataset)
    stride = max(1, len(everything) // args.problems)
    problems = everything[::stride][: args.problems]  # every difficulty, not just the first
    cfg = SearchConfig(n=args.n, beam_width=args.beam_width, max_steps=args.prefix_operands + 3)
    torch_device = "cuda" if torch.cuda.is_available() else "cpu"  # the transformers sides run where vLLM does
    policy, prm, hf_prm = Policy(args.policy), VLLMPRM(args.prm), HFPRM(args.prm, device=torch_device)
    engines = [policy, prm]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    report = {"device": device, "problems": len(problems), "n": args.n, "beam_width": args.beam_width}
    only = args.only.split(",")
    if "overhead" in only:
        report["overhead"] = bench_overhead(problems, policy, prm, cfg)
    if "prefix" in only:
        deep = arith.fresh_problems(args.problems, seed=9, n_operands=args.prefix_operands)  # depth = operands - 1
        engines.append(no_cache_vllm_prm(args.prm))  # kept alive: destroying an in-process engine breaks the others
        report["prefix"] = bench_prefix(deep, policy, {"vllm": (prm, engines[-1]), "hf": (hf_prm, hf_prm)}, cfg)
    if "notebook" in only:
        nb = everything[:: max(1, len(everything) // args.notebook_problems)][: args.notebook_problems]
        report["notebook"] = bench_notebook(nb, policy, prm, hf_prm, cfg)
    if "sal" in only:
        report["sal"] = bench_sal(problems, policy, prm, hf_prm, cfg)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if "scaling" in only:
        ns = [int(x) for x in args.scaling_n.split(",")]
        counts = [int(x) for x in args.scaling_problems.split(",")]
        pool = everything[:: max(1, len(everything) // max(counts))][: max(counts)]
        report["scaling"] = bench_scaling(pool, policy, prm, cfg, ns, counts)
        plot_scaling(report["scaling"]["rows"], out / "scaling.png")
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(report) + "\n")
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [f"device: {report['device']}; {report['problems']} problems; beam n={report['n']}, M={report['beam_width']}", "",
             "| comparison | ours | baseline | ratio | target |", "|---|---|---|---|---|"]
    if "overhead" in report:
        o = report["overhead"]
        lines.append(f"| search overhead (gen tokens/s, median of {len(o['ratios'])}) | {o['search_tokens_per_s']:.0f} | raw vLLM {o['raw_tokens_per_s']:.0f} | {o['ratio']:.2f} (all: {', '.join(f'{r:.2f}' for r in o['ratios'])}) | {o['target']} |")
    if "prefix" in report:
        p = report["prefix"]
        for name in ("vllm", "hf"):
            c, f = p[f"{name}_cached"], p[f"{name}_full"]
            share = p[f"{name}_wall_gain_share_of_theory"]
            lines.append(f"| PRM prefix caching, {name} (tokens computed; s) | {c['tokens_computed']}; {c['seconds']:.2f}s | {f['tokens_computed']}; {f['seconds']:.2f}s "
                         f"| tokens {p[f'{name}_token_ratio']:.2f}x, wall {p[f'{name}_wall_ratio']:.2f}x ({'' if share is None else f'{share:.0%} of theory'}) | {p['target']} |")
    if "notebook" in report:
        nb = report["notebook"]
        lines.append(f"| vs notebook greedy PRM search ({nb['problems']} problems) | {nb['ours_seconds']:.1f}s, acc {nb['ours_accuracy']:.0%} | {nb['notebook_seconds']:.1f}s, acc {nb['notebook_accuracy']:.0%} | {nb['speedup']:.1f}x | {nb['target']} |")
    if "sal" in report:
        s = report["sal"]
        lines.append(f"| vs search-and-learn-style beam (vLLM PRM) | {s['ours_vllm']['seconds']:.1f}s, acc {s['ours_vllm']['accuracy']:.0%} | {s['sal_full_hf']['seconds']:.1f}s, acc {s['sal_full_hf']['accuracy']:.0%} | {s['speedup_vllm']:.1f}x | {s['target']} |")
        lines.append(f"| vs search-and-learn-style beam (HF cached PRM) | {s['ours_hf']['seconds']:.1f}s, acc {s['ours_hf']['accuracy']:.0%} | {s['sal_full_hf']['seconds']:.1f}s | {s['speedup_hf']:.1f}x | {s['target']} |")
    if "scaling" in report:
        lines += ["", "| n | problems | wall s | generated tokens | PRM tokens computed | accuracy |", "|---|---|---|---|---|---|"]
        for r in report["scaling"]["rows"]:
            lines.append(f"| {r['n']} | {r['problems']} | {r['seconds']:.1f} | {r['generated_tokens']} | {r['prm_tokens_computed']} | {r['accuracy']:.0%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
