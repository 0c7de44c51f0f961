"""The benchmark harness on the shipped models, tiny sizes: each comparison runs and its numbers are consistent."""

import subprocess
import sys

from evals import bench
from problems import arith
from problems.datasets import load_problems
from strategies import SearchConfig

CFG = SearchConfig(n=4, beam_width=2, max_steps=10)


def test_overhead_replays_the_same_batches(policy, vllm_prm):
    report = bench.bench_overhead(load_problems("arith-test")[::100], policy, vllm_prm, CFG)
    assert report["generate_calls"] >= 2 and report["search_tokens"] > 0
    assert report["raw_tokens"] > 0 and report["ratio"] > 0 and report["prm_seconds"] > 0


def test_prefix_caching_computes_fewer_tokens_than_full_recompute(policy, vllm_prm, hf_prm):
    deep = arith.fresh_problems(3, seed=9, n_operands=6)
    report = bench.bench_prefix(deep, policy, {"vllm": (vllm_prm, vllm_prm), "hf": (hf_prm, hf_prm)}, CFG)
    assert report["max_depth"] >= 4
    for name in ("vllm", "hf"):
        cached, full = report[f"{name}_cached"], report[f"{name}_full"]
        assert cached["tokens_requested"] == full["tokens_requested"]  # the same score calls
        assert cached["tokens_computed"] < full["tokens_computed"] <= full["tokens_requested"]
    # the transformers scorer computes exactly the new tokens; its full baseline, every requested token
    assert report["hf_full"]["tokens_computed"] == report["hf_full"]["tokens_requested"]


def test_notebook_baseline_and_sal_loop_run(policy, vllm_prm, hf_prm):
    problems = load_problems("arith-test")[:2]  # 2 operands: quick for the naive loop
    nb = bench.bench_notebook(problems, policy, vllm_prm, hf_prm, SearchConfig(max_retries_per_step=1))
    assert nb["notebook_seconds"] > 0 and nb["ours_seconds"] > 0 and nb["notebook_accuracy"] == 1.0
    sal = bench.bench_sal(problems, policy, vllm_prm, hf_prm, CFG)
    assert sal["sal_full_hf"]["accuracy"] == sal["ours_hf"]["accuracy"] == 1.0 and sal["speedup_vllm"] > 0


def test_cli_help():
    run = subprocess.run([sys.executable, "-m", "evals.bench", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "notebook" in run.stdout and "--prefix-operands" in run.stdout
