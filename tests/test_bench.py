"""The benchmark harness on the shipped models, tiny sizes: each comparison runs and its numbers are consistent."""

import json
import subprocess
import sys

from engine import HFPRM
from engine.models import DEFAULT_POLICY, DEFAULT_PRM
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
    report = bench.bench_prefix(deep, policy, {"vllm": (vllm_prm, vllm_prm), "hf": (hf_prm, HFPRM(DEFAULT_PRM, reuse_kv=False))}, CFG, trials=2)
    assert report["max_depth"] >= 4 and len(report["hf_trial_shares"]) == 2
    for name in ("vllm", "hf"):
        cached, full = report[f"{name}_cached"], report[f"{name}_full"]
        assert cached["tokens_requested"] == full["tokens_requested"]  # the same score calls
        assert cached["tokens_computed"] < full["tokens_computed"] <= full["tokens_requested"]
    # the transformers scorer computes exactly the new tokens; its full baseline, every requested token
    assert report["hf_full"]["tokens_computed"] == report["hf_full"]["tokens_requested"]
    table = bench.markdown({"device": "CPU", "quick": True, "n": CFG.n, "beam_width": CFG.beam_width, "prefix": report})
    assert table.count("PRM prefix caching") == 2 and "median of 2 trials" in table


def test_notebook_baseline_and_sal_loop_run(policy, vllm_prm, hf_prm):
    problems = load_problems("arith-test")[:2]  # 2 operands: quick for the naive loop
    nb = bench.bench_notebook(problems, policy, vllm_prm, hf_prm, SearchConfig(max_retries_per_step=1))
    assert nb["notebook_seconds"] > 0 and nb["ours_seconds"] > 0 and nb["notebook_accuracy"] == 1.0
    sal = bench.bench_sal(problems, policy, vllm_prm, hf_prm, HFPRM(DEFAULT_PRM, reuse_kv=False), CFG)
    assert sal["sal_full_hf"]["accuracy"] == sal["ours_hf"]["accuracy"] == 1.0 and sal["speedup_vllm"] > 0


def test_sal_replay_scores_exactly_our_paths(policy, vllm_prm, hf_prm):
    """The search-and-learn baseline does our search's work: the same score requests, each path whole."""
    sal_prm = HFPRM(DEFAULT_PRM, reuse_kv=False)
    problems = load_problems("arith-test")[::250]
    report = bench.bench_sal_replay(problems, policy, vllm_prm, sal_prm, CFG, cached_hf=hf_prm)
    full, cached = report["sal_scoring"], report["hf_cached_scoring"]
    assert full["score_calls"] == cached["score_calls"] >= 2 and full["paths"] == cached["paths"] > 0
    assert full["tokens_requested"] == cached["tokens_requested"] == full["tokens_computed"]  # every path in full
    assert cached["tokens_computed"] < full["tokens_computed"]
    ours = report["ours_breakdown"]
    assert abs(sum(ours.values()) - report["ours_seconds"]) < 1e-6 and ours["policy"] > 0 and ours["prm"] > 0
    assert report["speedup"] == report["sal_seconds"] / report["ours_seconds"]


def test_notebook_replay_runs_one_forward_per_token_we_scored(policy, vllm_prm, hf_prm):
    from transformers import AutoModelForCausalLM

    problems = load_problems("arith-test")[:3]
    ours = bench.timed_search("greedy_retry", problems, policy, vllm_prm, SearchConfig(max_retries_per_step=1))
    model = AutoModelForCausalLM.from_pretrained(str(DEFAULT_POLICY)).eval()
    report = bench.notebook_replay(ours["score_calls"], model, policy.encoder, hf_prm)
    paths = [p for call in ours["score_calls"] for p in call]
    new_tokens = [len(policy.encoder.path_ids(p.question, p.steps)[0]) - len(policy.encoder.path_ids(p.question, p.steps[:-1])[0]) for p in paths]
    assert report["paths_scored"] == len(paths) and report["problems"] == 3
    assert report["policy_forwards"] == sum(new_tokens) > 0


def test_cli_help_and_bad_comparison():
    run = subprocess.run([sys.executable, "-m", "evals.bench", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "notebook-smollm2" in run.stdout and "--quick" in run.stdout
    run = subprocess.run([sys.executable, "-m", "evals.bench", "--only", "sal,nope"], capture_output=True, text=True)
    assert run.returncode == 2 and "unknown comparison(s) nope" in run.stderr


def test_quick_8x_setting_end_to_end(tmp_path):
    """The 8:1 setting as a user runs it: builds the 27M PRM stand-in, replays our search's work, writes the report."""
    run = subprocess.run([sys.executable, "-m", "evals.bench", "--quick", "--only", "sal-8x", "--output", str(tmp_path)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    sal = report["sal-8x"]
    assert sal["sal_scoring"]["paths"] == sal["hf_cached_scoring"]["paths"] > 0
    assert sal["hf_cached_scoring"]["tokens_computed"] < sal["sal_scoring"]["tokens_computed"]
    assert "arith 8:1" in (tmp_path / "bench.md").read_text()
