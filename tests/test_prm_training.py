import pytest
import torch

from engine import ARITH_FORMAT
from engine.encoding import StepEncoder
from problems import arith
from problems.arith import step_labels
from problems.metrics import prm_metrics
from trainers.data import DataError, load_prm_jsonl, tokenize_prm
from trainers.losses import IGNORE_INDEX, prm_loss
from trainers.tokenizer import build_char_tokenizer


def test_labels_sit_exactly_at_the_sep_positions():
    enc = StepEncoder(build_char_tokenizer(), ARITH_FORMAT, labels=True)
    ex = tokenize_prm({"question": "2*3+1", "completions": ["6+1", "8"], "labels": [True, False]}, enc)
    # <s> 2 * 3 + 1 = | 6 + 1 <sep> | 8 <sep>
    assert len(ex["input_ids"]) == 7 + 4 + 2
    assert ex["input_ids"][10] == enc.sep_id and ex["input_ids"][12] == enc.sep_id
    expected = [IGNORE_INDEX] * 13
    expected[10], expected[12] = enc.positive_id, enc.negative_id
    assert ex["labels"] == expected


def test_prm_loss_by_hand():
    pos, neg = 1, 2
    logits = torch.zeros(1, 3, 4)
    logits[0, 0] = torch.tensor([9.0, 2.0, 0.0, 5.0])  # labelled Positive: only logits 1 and 2 count
    logits[0, 2] = torch.tensor([0.0, 1.0, 3.0, -4.0])  # labelled Negative
    labels = torch.tensor([[pos, IGNORE_INDEX, neg]])
    # -log softmax([2, 0])[0] and -log softmax([1, 3])[1], averaged
    expected = (torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log1p(torch.exp(torch.tensor(-2.0)))) / 2
    assert torch.allclose(prm_loss(logits, labels, pos, neg), expected)
    assert prm_loss(logits, torch.full((1, 3), IGNORE_INDEX), pos, neg).item() == 0.0
    with pytest.raises(ValueError, match="Positive"):
        prm_loss(logits, torch.tensor([[3, IGNORE_INDEX, neg]]), pos, neg)


def test_verifier_labels_mark_the_first_error_and_everything_after():
    assert step_labels("3+4*5-2", ["3+20-2", "23-2", "21"]) == [True, True, True]
    assert step_labels("3+4*5-2", ["3+20-2", "24-2", "22"]) == [True, False, False]  # "22" is a valid step of a wrong state
    assert step_labels("3+4*5-2", ["7*5-2", "35-2", "33"]) == [False, False, False]


def test_prm_metrics_by_hand():
    m = prm_metrics([[0.9, 0.2, 0.1], [0.8, 0.7]], [[True, False, False], [True, False]])
    assert m["step_accuracy"] == pytest.approx(4 / 5)
    assert m["negative_precision"] == 1.0 and m["negative_recall"] == pytest.approx(2 / 3)
    assert m["first_error_accuracy"] == 0.5
    # ProcessBench: path 1 (error at 1) found exactly; path 2 (error at 1) judged clean; one clean path judged clean
    m = prm_metrics([[0.9, 0.2, 0.1], [0.8, 0.7], [0.9, 0.9]], [[True, False, False], [True, False], [True, True]])
    assert m["error_path_accuracy"] == 0.5 and m["correct_path_accuracy"] == 1.0
    assert m["processbench_f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_processbench_style_evaluation_cli(tmp_path):
    import json
    import subprocess
    import sys

    rows = []
    for p in arith.load_split("dev")[:40]:
        rows.append({"problem": p.question, "steps": list(p.steps), "label": -1})
        bad = list(p.steps)
        bad[-1] = str(int(bad[-1]) + 7)  # a wrong final answer
        rows.append({"problem": p.question, "steps": bad, "label": len(bad) - 1})
    f = tmp_path / "pb.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = subprocess.run([sys.executable, "-m", "evals.prm_eval", "--data", str(f)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-1000:]
    m = json.loads(run.stdout)
    assert m["paths"] == 80 and m["correct_path_accuracy"] > 0.8 and 0 < m["processbench_f1"] <= 1
    f.write_text('{"problem": "1+1", "steps": ["2"], "label": 3}\n')
    run = subprocess.run([sys.executable, "-m", "evals.prm_eval", "--data", str(f)], capture_output=True, text=True)
    assert run.returncode != 0 and "pb.jsonl:1: 'label' must be -1 or a step index below 1" in run.stderr


def test_malformed_stepwise_rows_name_the_line(tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text('{"prompt": "1+1=", "completions": ["2"], "labels": [true]}\n{"prompt": "x", "completions": ["a", "b"], "labels": [true]}\n')
    with pytest.raises(DataError, match="s.jsonl:2: 2 completions but 1 labels"):
        load_prm_jsonl(f)


def corrupted_rows(problems, seed: int) -> list[dict]:
    """Reference paths (all Positive) and copies with one step's number off by a little (Negative from there)."""
    import random

    rng = random.Random(seed)
    rows = []
    for p in problems:
        steps = list(p.steps)
        rows.append({"question": p.question, "completions": steps, "labels": [True] * len(steps)})
        k = rng.randrange(len(steps))
        bad = steps[:k] + [str(arith.evaluate(steps[k]) + rng.choice([-3, -2, -1, 1, 2, 3]))]
        rows.append({"question": p.question, "completions": bad, "labels": step_labels(p.question, bad)})
    return rows


def test_a_trained_prm_separates_correct_from_wrong_steps_at_sep(tmp_path):
    """Train where the scorer reads (SEP positions), then check the scorer on held-out paths."""
    import json

    from engine import HFPRM, StepPath
    from engine.models import DEFAULT_POLICY
    from trainers.prm import PRMConfig, train

    train_file, eval_file = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in corrupted_rows(arith.load_split("train")[:3000], 0)))
    held_out = corrupted_rows(arith.load_split("dev")[:100], 1)
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in held_out))
    cfg = PRMConfig(output_dir=str(tmp_path / "prm"), init_model=str(DEFAULT_POLICY), train_file=str(train_file),
                    eval_file=str(eval_file), max_steps=60, per_device_train_batch_size=32, learning_rate=1e-3,
                    warmup_steps=5, logging_steps=10, disable_tqdm=True)
    trainer = train(cfg)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0]
    scores = HFPRM(tmp_path / "prm").score([StepPath(r["question"], tuple(r["completions"])) for r in held_out]).scores
    good = [s for ss, r in zip(scores, held_out) for s, y in zip(ss, r["labels"]) if y]
    bad = [s for ss, r in zip(scores, held_out) for s, y in zip(ss, r["labels"]) if not y]
    assert sum(good) / len(good) > sum(bad) / len(bad) + 0.3
    metrics = json.loads((tmp_path / "prm" / "prm_eval.json").read_text())
    assert metrics["step_accuracy"] > 0.75


def test_prm_cli_help_and_errors(tmp_path):
    import subprocess
    import sys

    cli = [sys.executable, "-m", "trainers.prm"]
    help_text = subprocess.run(cli + ["--help"], capture_output=True, text=True, check=True).stdout
    for option in ["--train_file", "--eval_file", "--rollouts_per_problem", "--positive", "--negative"]:
        assert option in help_text
    run = subprocess.run(cli + ["--init_model", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")], capture_output=True, text=True)
    assert run.returncode != 0 and "init model directory not found" in run.stderr


def test_within_problem_auroc_by_hand():
    from problems.metrics import within_problem_auroc

    # problem 1: solved .9 vs unsolved .5 and .9 -> 1 + 0.5 of 2 pairs; problem 2 has no unsolved one: left out
    groups = [([.9, .5, .9], [True, False, False]), ([.3, .2], [True, True]), ([.1, .4], [True, False])]
    auroc, both = within_problem_auroc(groups)
    assert both == 2 and auroc == pytest.approx((1 + 0.5 + 0) / 3)
    assert within_problem_auroc([([.5], [True])]) == (None, 0)


def test_countdown_prm_data_is_rollouts_random_paths_search_states_sibling_sets_and_corrupted_walks_labelled_by_the_oracle(tmp_path):
    import json

    from engine.models import MODELS_DIR
    from problems import countdown
    from trainers.prm import PRMConfig, train
    from trainers.step_sft import StepSFTConfig
    from trainers.step_sft import train as train_sft

    policy = tmp_path / "policy"  # a tiny countdown policy: enough to make rollouts
    train_sft(StepSFTConfig(output_dir=str(policy), world="countdown", max_train_rows=32, max_steps=20, hidden_size=64, num_layers=2,
                            num_heads=2, intermediate_size=128, per_device_train_batch_size=16, learning_rate=3e-3, eval_problems=0,
                            data_workers=1, disable_tqdm=True))
    cfg = PRMConfig(output_dir=str(tmp_path / "prm"), world="countdown", policy=str(policy), init_model=str(policy), rollout_problems=6,
                    rollouts_per_problem=2, random_paths=2, eval_problems=3, max_steps=2, per_device_train_batch_size=8, disable_tqdm=True,
                    data_only=True, search_problems=2, search_n=4, search_prm=str(MODELS_DIR / "countdown-prm"), sibling_problems=3,
                    corrupted_problems=4, claimed_problems=5, dataset_num_proc=2)
    rollouts = tmp_path / "prm" / "rollouts"
    assert train(cfg) is None and not (tmp_path / "prm" / "model.safetensors").exists()  # --data_only: the data, no training
    rows = [json.loads(line) for line in (rollouts / "train.jsonl").read_text().splitlines()]
    assert rows and all(r["labels"] == countdown.step_labels(r["question"], r["completions"]) for r in rows)
    fresh = {p.question for p in countdown.fresh_problems(6, seed=cfg.seed + 7)}
    assert {r["question"] for r in rows} == fresh  # never a dev or test question
    assert sum(not r["labels"][-1] for r in rows) > 0
    states = [json.loads(line) for line in (rollouts / "search.jsonl").read_text().splitlines()]  # the beam search's own states
    assert states and all(r["labels"] == countdown.step_labels(r["question"], r["completions"]) for r in states)
    assert {r["question"] for r in states} == {p.question for p in countdown.fresh_problems(2, seed=cfg.seed + 27)}
    siblings = [json.loads(line) for line in (rollouts / "siblings.jsonl").read_text().splitlines()]  # no policy: the world's sibling sets
    seed = cfg.seed + 37_000
    assert siblings == countdown.sibling_paths(countdown.fresh_problems(3, seed=seed), cfg.sibling_per_state, seed=seed)
    corrupted = [json.loads(line) for line in (rollouts / "corrupted.jsonl").read_text().splitlines()]  # nor here: walks with a slip
    seed = cfg.seed + 53_000
    assert corrupted == countdown.corrupted_paths(countdown.fresh_problems(4, seed=seed), cfg.corrupted_per_problem, seed=seed)
    claimed = [json.loads(line) for line in (rollouts / "claimed.jsonl").read_text().splitlines()]  # nor here: claim pairs
    seed = cfg.seed + 71_000
    assert claimed == countdown.claimed_walks(countdown.fresh_problems(5, seed=seed), cfg.claimed_per_problem, seed=seed)

    # train elsewhere on those files: a fresh PRM of its own size, stopped by --max_train_minutes, its
    # cosine run over that time (--schedule_by_time): the last step's learning rate is near zero
    trainer = train(PRMConfig(output_dir=str(tmp_path / "fresh"), init_model="fresh", hidden_size=32, num_layers=1, num_heads=2,
                              intermediate_size=64, train_file=str(rollouts / "train.jsonl"), eval_file=str(rollouts / "dev.jsonl"),
                              max_steps=10**6, max_train_minutes=0.01, schedule_by_time=True, warmup_steps=1, learning_rate=1e-3,
                              per_device_train_batch_size=8, disable_tqdm=True))
    assert 1 <= trainer.state.global_step < 10**6
    assert isinstance(trainer.lr_scheduler, torch.optim.lr_scheduler.LambdaLR) and trainer.lr_scheduler.last_epoch >= 1
    assert trainer.lr_scheduler.get_last_lr()[0] < 1e-4  # a tenth of the peak: annealed by the clock, not by max_steps
    assert trainer.model.config.num_hidden_layers == 1 and (tmp_path / "fresh" / "prm_eval.json").is_file()


def test_search_rows_are_the_beam_states_labelled_exactly():
    """trainers.prm --search_problems: every path the beam search scores, exact labels, no bare prefixes."""
    from problems import countdown
    from strategies import SearchConfig
    from tests.fakes import FakePolicy, FakePRM, random_scores
    from trainers.prm import search_rows

    def legal_moves(question, steps):  # a policy that proposes legal steps only, the last one finishing
        state = countdown.parse_question(question)[1]
        for step in steps:
            state = countdown.apply_step(state, step)
        return [(text, len(after) == 1) for text, after in countdown.moves(state)][:8]

    problems = countdown.load_split("dev")[:3]
    prm = FakePRM(random_scores)
    rows = search_rows(FakePolicy(legal_moves, random=True), prm, problems, SearchConfig(n=4, beam_width=2), countdown, batch_size=2)
    scored = {(p.question, p.steps) for p in prm.scored}
    kept = [(r["question"], tuple(r["completions"])) for r in rows]
    assert len(kept) == len(set(kept)) and set(kept) <= scored
    assert all(r["labels"] == countdown.step_labels(r["question"], r["completions"]) for r in rows)
    # every scored state is in a row, as the row itself or as one of its prefixes; no row is a prefix of another
    assert all(any(q == kq and ks[: len(s)] == s for kq, ks in kept) for q, s in scored)
    assert not any(q == kq and len(s) < len(ks) and ks[: len(s)] == s for q, s in kept for kq, ks in kept)
    assert {r["question"] for r in rows} == {p.question for p in problems}
    assert any(all(r["labels"]) for r in rows) and any(not r["labels"][-1] for r in rows)  # reachable and dead-end states


def test_deepen_keeps_the_function_and_doubles_the_layers(tmp_path):
    from transformers import AutoModelForCausalLM

    from engine.models import MODELS_DIR
    from trainers.common import deepen

    def load():
        return AutoModelForCausalLM.from_pretrained(str(MODELS_DIR / "countdown-prm"), dtype=torch.float32).eval()

    base, deep = load(), deepen(load(), 2)
    x = torch.randint(5, 30, (2, 24))
    with torch.no_grad():
        assert len(deep.model.layers) == 2 * len(base.model.layers) == deep.config.num_hidden_layers
        assert torch.equal(base(x).logits, deep(x).logits)
        deep.save_pretrained(tmp_path / "deep")
        again = AutoModelForCausalLM.from_pretrained(str(tmp_path / "deep")).eval()
        assert torch.equal(base(x).logits, again(x).logits)
    assert sum(p.numel() for p in deep.parameters()) > 1.9 * sum(p.numel() for p in base.parameters())


def test_legality_rows_relabel_countdown_paths_and_refuse_other_worlds():
    from trainers.prm import legality_rows

    rows = [{"question": "100:1 2 3 4", "completions": ["1+2=3|3 3 4", "3*4=12|3 12"], "labels": [False, False]}]
    assert legality_rows(rows, {3})[0]["labels"] == [True, False]
    assert rows[0]["labels"] == [False, False]  # the input rows are left as they are
    with pytest.raises(ValueError, match="relabels countdown paths"):
        legality_rows([{"question": "12+3=", "completions": ["15"], "labels": [True]}], {3})


def test_legality_left_option_is_parsed_and_checked(tmp_path):
    from transformers import HfArgumentParser

    from trainers.prm import PRMConfig

    def parse(*argv):
        return HfArgumentParser(PRMConfig).parse_args_into_dataclasses(["--output_dir", str(tmp_path), *argv])[0]

    assert parse("--legality_left", "3,4").legality_counts == {3, 4} and parse().legality_counts == set()
    with pytest.raises(ValueError, match="counts of numbers left"):
        parse("--legality_left", "x,4")
