"""Step-labelled data in its wild layouts (Math-Shepherd, PRM800K, ProcessBench, stepwise, CHAMP),
PRM training from them, and the ProcessBench-style evaluation of a recipe's PRM on CHAMP."""

import json
import subprocess
import sys

import pytest

from engine.models import REPO_ROOT
from problems.datasets import DatasetError, load_problems
from problems.step_data import StepLabels, champ_step_labels, load_step_labels, parse_row

SHEPHERD = {
    "input": "Janet has 3 apples and buys 2. How many? Step 1: She buys 2 more. ки\nStep 2: 3 + 2 = 6. ки\nStep 3: The answer is 6. ки",
    "label": "Janet has 3 apples and buys 2. How many? Step 1: She buys 2 more. +\nStep 2: 3 + 2 = 6. -\nStep 3: The answer is 6. -",
    "task": "GSM8K",
}
PRM800K = {
    "question": {"problem": "What is 1+1?", "ground_truth_answer": "2"},
    "label": {"steps": [
        {"completions": [{"text": "1+1 = 2.", "rating": 1}, {"text": "1+1 = 3.", "rating": -1}], "chosen_completion": 0},
        {"completions": [{"text": "So it is 2.", "rating": 0}], "chosen_completion": 0},
        {"completions": [{"text": "Wait, it is 3.", "rating": -1}, {"text": "\\boxed{2}", "rating": 1}], "chosen_completion": None},
    ], "finish_reason": "found_error"},
}


def test_math_shepherd_rows():
    row = parse_row(SHEPHERD, "x:1")
    assert row == StepLabels("Janet has 3 apples and buys 2. How many?",
                             ["Step 1: She buys 2 more.", "Step 2: 3 + 2 = 6.", "Step 3: The answer is 6."], [True, False, False])
    bad = {**SHEPHERD, "label": SHEPHERD["label"].replace("+", "?")}
    with pytest.raises(DatasetError, match="x:1: 'label' should hold"):
        parse_row(bad, "x:1")


def test_prm800k_rows():
    # rating -1 is wrong; 0 is not; where the labeller stopped (no chosen completion), the -1 step
    assert parse_row(PRM800K, "y:1") == StepLabels("What is 1+1?", ["1+1 = 2.", "So it is 2.", "Wait, it is 3."], [True, True, False])


def test_processbench_and_stepwise_rows_and_errors():
    assert parse_row({"problem": "Q", "steps": ["a", "b", "c"], "label": 1}, "z").labels == [True, False, False]
    assert parse_row({"problem": "Q", "steps": ["a", "b"], "label": -1}, "z").labels == [True, True]
    assert parse_row({"question": "Q", "completions": ["a"], "labels": [False]}, "z").labels == [False]
    with pytest.raises(DatasetError, match="z: 'label' must be -1 or a step index below 2"):
        parse_row({"problem": "Q", "steps": ["a", "b"], "label": 5}, "z")
    with pytest.raises(DatasetError, match="z: not a known step-labelled layout"):
        parse_row({"text": "hello"}, "z")
    with pytest.raises(DatasetError, match="z: malformed row"):
        parse_row({"question": {"problem": "Q"}, "label": {"steps": [{"completions": [], "chosen_completion": 3}]}}, "z")


def test_champ_annotations_and_problems():
    rows = champ_step_labels()
    assert len(rows) == 540  # 270 problems x 2 annotated model solutions
    assert sum(all(r.labels) for r in rows) == 96  # annotated "no mistake"
    for r in rows:
        assert len(r.steps) == len(r.labels) and r.steps and all(s.strip() for s in r.steps)
        first = r.labels.index(False) if False in r.labels else len(r.labels)
        assert r.labels == [k < first for k in range(len(r.labels))]
    problems = load_problems("champ")
    assert len(problems) == 270 and all(p.answer for p in problems)
    assert problems[0].grade("\\boxed{" + problems[0].answer + "}")
    numeric = {p.id: p.answer for p in load_problems("champ-numeric")}
    assert len(numeric) == 89 and numeric["P_Combinatorics_1"] == "239"
    assert "252" in numeric.values() and "5/14" in numeric.values()  # "C(10, 5), or equivalently 252"; "5/14, or approximately 35.7%"


def test_prm_training_from_math_shepherd_rows_with_a_recipe_format(tmp_path):
    """trainers.prm reads a Math-Shepherd file and trains the Math-Shepherd-style stand-in in the recipe's PRM format."""
    from recipes.local_models import local_model
    from trainers.prm import PRMConfig, train

    data = tmp_path / "shepherd.jsonl"
    data.write_text("".join(json.dumps(SHEPHERD) + "\n" for _ in range(8)))
    cfg = PRMConfig(output_dir=str(tmp_path / "out"), recipe=str(REPO_ROOT / "recipes/smollm2-shepherd.yaml"),
                    init_model=str(local_model("shepherd-prm-standin")), train_file=str(data), max_steps=2,
                    per_device_train_batch_size=4, learning_rate=1e-3, report_to=[], save_strategy="no")
    assert cfg.step_format.sep == "ки" and cfg.step_format.positive == "+"
    trainer = train(cfg)
    assert trainer.state.global_step == 2 and (tmp_path / "out" / "model.safetensors").is_file()


def test_prm_eval_cli_scores_champ_with_a_recipes_classifier_prm():
    out = subprocess.run([sys.executable, "-m", "evals.prm_eval", "--recipe", "recipes/smollm2-qwen-prm.yaml", "--data", "champ",
                          "--limit", "12"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout[out.stdout.index("{"):])
    assert report["paths"] + report["skipped_too_long"] == 12 and 0 <= report["first_error_accuracy"] <= 1


def test_missing_step_data_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="step-labelled data not found"):
        load_step_labels(tmp_path / "nope.jsonl")
