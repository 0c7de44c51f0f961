"""KTO end to end on the shipped policy: desirable completions gain log-probability over undesirable ones."""

import json
import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine import ARITH_FORMAT
from engine.encoding import StepEncoder
from engine.models import DEFAULT_POLICY
from problems import arith
from problems.datasets import DatasetError
from trainers.kto import (
    KTOCollator,
    KTOConfig,
    balanced_desirable_weight,
    completion_rows,
    load_unpaired_jsonl,
    mismatched_prompts,
    step_rows,
    tokenize_unpaired,
    train,
)
from trainers.losses import sequence_logps


def unpaired_rows(problems, seed):
    """The reference solution (desirable) and one with a wrong final answer (undesirable) per problem."""
    rng = random.Random(seed)
    rows = []
    for p in problems:
        rows.append({"question": p.question, "completion": ARITH_FORMAT.join_steps(p.steps, True), "label": True})
        bad = list(p.steps[:-1]) + [str(p.answer + rng.choice([-2, -1, 1, 2]))]
        rows.append({"question": p.question, "completion": ARITH_FORMAT.join_steps(bad, True), "label": False})
    return rows


def margin(model_dir, rows) -> float:
    """mean log p(desirable) - mean log p(undesirable)."""
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    enc = StepEncoder(tok, ARITH_FORMAT)
    examples = [tokenize_unpaired(r, enc) for r in rows]
    for e, other in zip(examples, mismatched_prompts([e["prompt_ids"] for e in examples])):
        e["kl_prompt_ids"] = other
    batch = KTOCollator(tok.pad_token_id)(examples)
    with torch.no_grad():
        logps = sequence_logps(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"])
    good = batch["label"]
    return (logps[good].mean() - logps[~good].mean()).item()


def test_kto_raises_desirable_over_undesirable(tmp_path):
    # the shipped policy already prefers right answers on easy problems; use 4-operand ones with the most room
    problems = [p for p in arith.load_split("train")[:4000] if p.n_operands == 4][:600]
    train_file = tmp_path / "rows.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in unpaired_rows(problems[:500], 0)))
    held_out = unpaired_rows(problems[500:], 1)
    cfg = KTOConfig(output_dir=str(tmp_path / "kto"), train_file=str(train_file), max_steps=30, learning_rate=2e-4,
                    per_device_train_batch_size=16, warmup_steps=3, logging_steps=10, beta=0.1, disable_tqdm=True)
    trainer = train(cfg)
    logged = [h for h in trainer.state.log_history if "rewards/margins" in h]
    assert logged and logged[-1]["rewards/margins"] > 0
    assert margin(tmp_path / "kto", held_out) > margin(DEFAULT_POLICY, held_out) + 0.5


def test_mismatched_pairs_and_balancing():
    collate = KTOCollator(pad_id=0)
    prompts = [[1, 2], [4], [4], [1, 2]]
    # each row's KL prompt: the next row's (cyclically) that differs from its own
    assert mismatched_prompts(prompts) == [[4], [1, 2], [1, 2], [4]]
    with pytest.raises(DatasetError, match="at least two different prompts"):
        mismatched_prompts([[1], [1]])
    batch = collate([{"prompt_ids": [1, 2], "completion_ids": [3], "label": True, "kl_prompt_ids": [4]},
                     {"prompt_ids": [4], "completion_ids": [5, 6], "label": False, "kl_prompt_ids": [1, 2]}])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert batch["labels"].tolist() == [[-100, -100, 3], [-100, 5, 6]]
    # completion i is scored under its row's KL prompt
    assert batch["kl_input_ids"].tolist() == [[4, 3, 0, 0], [1, 2, 5, 6]]
    assert batch["kl_labels"].tolist() == [[-100, 3, -100, -100], [-100, -100, 5, 6]]
    assert batch["label"].tolist() == [True, False]
    assert balanced_desirable_weight(100, 100, 1.0) == 1.0
    assert balanced_desirable_weight(10, 100, 1.0) == pytest.approx(10.0)  # ratio 0.1 -> 1
    assert balanced_desirable_weight(200, 100, 1.0) == pytest.approx((4 / 3) / 2)  # ratio 2 -> 4/3


def test_malformed_unpaired_rows(tmp_path):
    f = tmp_path / "u.jsonl"
    f.write_text('{"prompt": "1+1=", "completion": "2", "label": true}\n{"prompt": "1+2=", "completion": "3", "label": "yes"}\n')
    with pytest.raises(DatasetError, match="u.jsonl:2: 'label' must be true or false"):
        load_unpaired_jsonl(f)
    f.write_text('{"question": "1+1", "prefix_steps": "2", "completion": "2<sep>", "label": true}\n')
    with pytest.raises(DatasetError, match="u.jsonl:1: 'prefix_steps' must be a list"):
        load_unpaired_jsonl(f)


def test_step_rows_stop_at_the_first_wrong_step():
    fmt = ARITH_FORMAT
    rows = step_rows("3+4*5-2", ("3+20-2", "23-2", "21"), True, fmt)
    assert [(r["prefix_steps"], r["completion"], r["label"]) for r in rows] == [
        ([], "3+20-2<sep>", True), (["3+20-2"], "23-2<sep>", True), (["3+20-2", "23-2"], "21<sep></s>", True)]
    rows = step_rows("3+4*5-2", ("3+20-2", "24-2", "22"), True, fmt)  # wrong second step: nothing after it
    assert [(r["completion"], r["label"]) for r in rows] == [("3+20-2<sep>", True), ("24-2<sep>", False)]
    assert [r["label"] for r in completion_rows("3+4*5-2", ("3+20-2", "24-2", "22"), True, fmt)] == [False]
    # a step row's prompt is the question and the steps before it, exactly as the policy sees them
    tok = AutoTokenizer.from_pretrained(str(DEFAULT_POLICY))
    enc = StepEncoder(tok, fmt)
    ex = tokenize_unpaired(rows[1], enc)
    assert ex["prompt_ids"] == enc.path_ids("3+4*5-2", ["3+20-2"])[0]
    assert ex["prompt_ids"] + ex["completion_ids"] == enc.path_ids("3+4*5-2", ["3+20-2", "24-2"])[0]


def test_countdown_step_rows_push_down_the_move_that_loses_the_target():
    """On countdown a step is desirable iff it is legal and the target stays reachable (10 from 2 3 5:
    3+2=5 then 5+5=10; 5*3=15 leaves 2 15, from which 10 cannot be made), and a finishing step
    only if the path is solved."""
    from problems import countdown
    from recipes import load_recipe

    fmt = load_recipe("recipes/countdown.yaml").policy_spec.format
    rows = step_rows("10:2 3 5", ("3+2=5|5 5", "5+5=10|10"), True, fmt, countdown)
    assert [(r["prefix_steps"], r["completion"], r["label"]) for r in rows] == [
        ([], "3+2=5|5 5<sep>", True), (["3+2=5|5 5"], "5+5=10|10<sep></s>", True)]
    rows = step_rows("10:2 3 5", ("5*3=15|2 15", "15-2=10|10"), True, fmt, countdown)  # a dead end, then a fudged claim
    assert [(r["completion"], r["label"]) for r in rows] == [("5*3=15|2 15<sep>", False)]
    rows = step_rows("10:2 3 5", ("3+2=5|5 5",), True, fmt, countdown)  # stops with two numbers left: that EOS is undesirable
    assert [(r["completion"], r["label"]) for r in rows] == [("3+2=5|5 5<sep></s>", False)]
    assert [r["label"] for r in completion_rows("10:2 3 5", ("3+2=5|5 5", "5+5=10|10"), True, fmt, countdown)] == [True]
    assert [r["label"] for r in completion_rows("10:2 3 5", ("5*3=15|2 15", "15-2=10|10"), True, fmt, countdown)] == [False]


def test_sft_control_loss_is_the_token_mean_nll_of_the_completions():
    """--loss_type sft (rejection-sampling fine-tuning on the same rows): cross-entropy of the
    completion tokens only, averaged over all of them in the batch."""
    from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments

    from trainers.kto import KTOTrainer

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=11, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         intermediate_size=32, pad_token_id=0))
    examples = [{"prompt_ids": [1, 2, 3], "completion_ids": [4, 5], "kl_prompt_ids": [6], "label": True},
                {"prompt_ids": [7], "completion_ids": [8, 9, 10], "kl_prompt_ids": [1, 2], "label": True}]
    batch = KTOCollator(0)(examples)
    trainer = KTOTrainer(model=model, args=TrainingArguments(output_dir="/tmp/unused", report_to="none", use_cpu=True), ref_model=None, beta=0.1,
                         desirable_weight=1.0, undesirable_weight=1.0, length_normalized=False, loss_type="sft")
    loss = trainer.compute_loss(model, dict(batch))
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11), batch["labels"][:, 1:].reshape(-1), ignore_index=-100)
    assert torch.allclose(loss, expected, atol=1e-6)

    # --nll_weight: the KTO loss plus alpha times that NLL over the desirable rows only
    import copy

    examples[1]["label"] = False
    batch = KTOCollator(0)(examples)
    kto = lambda alpha: KTOTrainer(model=model, args=TrainingArguments(output_dir="/tmp/unused", report_to="none", use_cpu=True),  # noqa: E731
                                   ref_model=copy.deepcopy(model), beta=0.1, desirable_weight=1.0, undesirable_weight=1.0,
                                   length_normalized=False, nll_weight=alpha).compute_loss(model, dict(batch))
    first = torch.nn.functional.cross_entropy(logits[0, :-1], batch["labels"][0, 1:], ignore_index=-100)  # row 0: the desirable one
    assert torch.allclose(kto(0.5), kto(0.0) + 0.5 * first, atol=1e-6)


def test_precomputed_reference_logps_give_the_same_loss():
    """precompute_ref_log_probs: the frozen reference scored once into dataset columns gives the
    loss (and z_ref) of scoring it every step, and the trainer then needs no reference model."""
    import copy

    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments

    from trainers.kto import KTOTrainer, precompute_reference_logps

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=11, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         intermediate_size=32, pad_token_id=0))
    reference = copy.deepcopy(model)
    with torch.no_grad():  # the policy has moved away from the reference
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    rows = [{"prompt_ids": [1, 2, 3], "completion_ids": [4, 5], "kl_prompt_ids": [6], "label": True},
            {"prompt_ids": [7], "completion_ids": [8, 9, 10], "kl_prompt_ids": [1, 2, 3], "label": False},
            {"prompt_ids": [6], "completion_ids": [3], "kl_prompt_ids": [7], "label": True}]
    collator = KTOCollator(0)
    dataset = precompute_reference_logps(reference, Dataset.from_list(rows), collator, batch_size=2)
    args = TrainingArguments(output_dir="/tmp/unused", report_to="none", use_cpu=True)
    kwargs = dict(beta=0.5, desirable_weight=1.0, undesirable_weight=1.0, length_normalized=False)
    on_the_fly = KTOTrainer(model=model, args=args, ref_model=reference, **kwargs)
    precomputed = KTOTrainer(model=model, args=args, ref_model=None, **kwargs)
    expected = on_the_fly.compute_loss(model, collator(rows))
    got = precomputed.compute_loss(model, collator([dataset[i] for i in range(len(dataset))]))
    assert torch.allclose(got, expected, atol=1e-6) and expected.abs() > 0
    assert on_the_fly._metrics["kl"] == pytest.approx(precomputed._metrics["kl"], abs=1e-6)
    batch = collator(rows)
    with torch.no_grad():
        direct = sequence_logps(reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, batch["labels"])
    assert dataset["reference_logps"] == pytest.approx(direct.tolist(), abs=1e-5)


def test_selected_rows_cut_completions_and_keep_what_each_run_trains_on(tmp_path):
    from trainers.kto import selected_rows

    rows = [{"question": "10:2 3 5", "completion": "3+2=5|5 5<sep>", "label": True},
            {"question": "10:2 3 5", "completion": "5*3=15|2 15<sep>", "label": False},
            {"question": "10:2 3 5", "prefix_steps": ["3+2=5|5 5"], "completion": "5+5=10|10<sep></s>", "label": True}]
    cfg = lambda **kw: KTOConfig(output_dir=str(tmp_path), **kw)  # noqa: E731
    assert selected_rows(rows, cfg()) == rows
    moves = selected_rows(rows, cfg(completion_until="="))  # the move alone: its result and the numbers left are dropped
    assert [r["completion"] for r in moves] == ["3+2", "5*3", "5+5"] and moves[2]["prefix_steps"] == ["3+2=5|5 5"]
    assert [r["label"] for r in selected_rows(rows, cfg(loss_type="sft"))] == [True, True]
    assert selected_rows(rows, cfg(keep_desirable=0.0)) == [rows[1]]
    with pytest.raises(ValueError, match="--loss_type"):
        selected_rows(rows, cfg(loss_type="dpo"))
