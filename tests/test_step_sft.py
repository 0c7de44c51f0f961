import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from engine.encoding import StepEncoder
from engine.format import ARITH_FORMAT
from problems import arith
from trainers.common import fresh_llama
from trainers.data import IGNORE_INDEX, DataError, load_sft_jsonl, tokenize_sft
from trainers.greedy import greedy_steps
from trainers.step_sft import StepSFTConfig, train, train_problems
from trainers.tokenizer import build_char_tokenizer

KEEP_ALIVE = []
TINY = dict(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, per_device_train_batch_size=32,
            learning_rate=3e-3, warmup_steps=5, logging_steps=10, eval_problems=0, max_train_rows=5000, disable_tqdm=True)


def test_labels_cover_exactly_the_response():
    tok = build_char_tokenizer()
    ex = tokenize_sft({"question": "2*3+1", "steps": ["6+1", "7"]}, StepEncoder(tok, ARITH_FORMAT))
    prompt = tok("2*3+1=")["input_ids"]  # <s> 2 * 3 + 1 =
    response = tok("6+1<sep>7<sep></s>", add_special_tokens=False)["input_ids"]
    assert len(prompt) == 7 and len(response) == 3 + 1 + 1 + 1 + 1
    assert ex["input_ids"] == prompt + response
    assert ex["labels"] == [IGNORE_INDEX] * 7 + response
    # a verbatim prompt skips the template
    ex2 = tokenize_sft({"prompt": "Q", "steps": ["a"]}, StepEncoder(tok, ARITH_FORMAT))
    assert ex2["labels"] == [IGNORE_INDEX, IGNORE_INDEX] + tok("a<sep></s>", add_special_tokens=False)["input_ids"]


def test_model_loss_is_the_response_nll_shifted_once():
    cfg = StepSFTConfig(output_dir="unused", **{k: v for k, v in TINY.items() if k in ("hidden_size", "num_layers", "num_heads", "intermediate_size")})
    model, tok = fresh_llama(cfg, ARITH_FORMAT, seed=0)
    ex = tokenize_sft({"question": "12-3*4", "steps": ["12-12", "0"]}, StepEncoder(tok, ARITH_FORMAT))
    ids, labels = torch.tensor([ex["input_ids"]]), torch.tensor([ex["labels"]])
    out = model(input_ids=ids, labels=labels)
    logp = torch.log_softmax(out.logits[0].float(), -1)
    # token t is predicted from the logits at t - 1; only response tokens count
    terms = [-logp[t - 1, ids[0, t]] for t in range(1, ids.shape[1]) if labels[0, t] != IGNORE_INDEX]
    assert len(terms) == sum(label != IGNORE_INDEX for label in ex["labels"])
    assert torch.allclose(out.loss, torch.stack(terms).mean(), atol=1e-5)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sft")
    trainer = train(StepSFTConfig(output_dir=str(out), max_steps=80, save_steps=40, **TINY))
    return out, trainer


def test_smoke_training_lowers_loss_and_writes_an_hf_directory(smoke_run):
    out, trainer = smoke_run
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) >= 5 and losses[-1] < 0.7 * losses[0]
    for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]:
        assert (out / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    steps = greedy_steps(model, StepEncoder(tok, ARITH_FORMAT), ["3+4", "5*6-1"], max_new_tokens=40)
    assert len(steps) == 2 and all(isinstance(s, list) for s in steps)


def test_vllm_loads_and_generates_from_the_trained_directory(smoke_run):
    from vllm import LLM, SamplingParams

    out, _ = smoke_run
    llm = LLM(model=str(out), dtype="float32", enforce_eager=True, block_size=32, max_model_len=256, seed=0)
    tok = AutoTokenizer.from_pretrained(str(out))
    params = SamplingParams(temperature=0, max_tokens=30, stop_token_ids=[tok.eos_token_id], skip_special_tokens=False)
    outputs = llm.generate(["3+4=", "5*6-1="], params)
    assert [len(o.outputs[0].token_ids) > 0 for o in outputs] == [True, True]
    # greedy vLLM continues exactly as greedy transformers does on the same weights
    model = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    ids = tok("3+4=", return_tensors="pt")["input_ids"]
    hf = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    assert list(outputs[0].outputs[0].token_ids[:5]) == hf[0, ids.shape[1]:].tolist()[:5]
    # Destroying an in-process vLLM engine tears down vLLM's process-wide parallel state, which
    # the session's other engines still use: keep this one alive until the session ends.
    KEEP_ALIVE.append(llm)


def test_rerun_resumes_from_the_last_checkpoint(smoke_run, tmp_path):
    out, _ = smoke_run
    resumed_dir = tmp_path / "resume"
    import shutil

    shutil.copytree(out / "checkpoint-80", resumed_dir / "checkpoint-80")
    trainer = train(StepSFTConfig(output_dir=str(resumed_dir), max_steps=100, save_steps=1000, **TINY))
    assert trainer.state.global_step == 100
    logged_steps = [h["step"] for h in trainer.state.log_history if "loss" in h]
    assert logged_steps[-2:] == [90, 100]  # steps 10..80 come from the checkpoint's history


def test_fine_tunes_a_local_model_dir_on_a_jsonl_file(smoke_run, tmp_path):
    out, _ = smoke_run
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"question": p.question, "steps": list(p.steps)}) for p in arith.load_split("dev")[:64]))
    trainer = train(StepSFTConfig(output_dir=str(tmp_path / "ft"), init_model=str(out), train_file=str(rows),
                                  max_steps=4, **{**TINY, "logging_steps": 1}))
    assert trainer.state.global_step == 4 and (tmp_path / "ft" / "model.safetensors").is_file()
    deep = train(StepSFTConfig(output_dir=str(tmp_path / "deep"), init_model=str(out), train_file=str(rows), deepen=2,
                               max_steps=1, **{**TINY, "logging_steps": 1}))  # --deepen: twice the layers, same start
    base_layers = json.loads((out / "config.json").read_text())["num_hidden_layers"]
    assert deep.model.config.num_hidden_layers == 2 * base_layers
    assert json.loads((tmp_path / "deep" / "config.json").read_text())["num_hidden_layers"] == 2 * base_layers


def test_train_operands_picks_the_split_or_fresh_problems():
    assert train_problems(StepSFTConfig(output_dir="unused")) == arith.load_split("train")
    long = train_problems(StepSFTConfig(output_dir="unused", train_operands="5-6", max_train_rows=300))
    assert len(long) == 300 and {p.n_operands for p in long} == {5, 6}
    with pytest.raises(ValueError, match="train_operands"):
        train_problems(StepSFTConfig(output_dir="unused", train_operands="six"))


def test_malformed_rows_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1", "steps": ["2"]}\n{"question": "1+2", "steps": "3"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: 'steps' must be"):
        load_sft_jsonl(bad)
    bad.write_text('{"question": "1+1", "steps": ["2"]}\n{not json\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        load_sft_jsonl(bad)
    with pytest.raises(DataError, match="not found"):
        load_sft_jsonl(tmp_path / "missing.jsonl")


def test_cli_help_and_clear_errors(tmp_path):
    cli = [sys.executable, "-m", "trainers.step_sft"]
    help_text = subprocess.run(cli + ["--help"], capture_output=True, text=True, check=True).stdout
    for option in ["--init_model", "--train_file", "--hidden_size", "--max_steps", "--gradient_accumulation_steps"]:
        assert option in help_text
    run = subprocess.run(cli + ["--init_model", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "o")], capture_output=True, text=True)
    assert run.returncode != 0 and "init model directory not found" in run.stderr



def test_torchrun_two_cpu_processes_train_one_model(tmp_path):
    """DDP over gloo: two processes share each step's batches (the epoch advances twice as fast) and save one model."""
    out = tmp_path / "ddp"
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "trainers.step_sft", "--output_dir", str(out),
         "--max_steps", "4", "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2", "--intermediate_size", "64",
         "--per_device_train_batch_size", "8", "--max_train_rows", "200", "--eval_problems", "0", "--save_steps", "2", "--disable_tqdm", "true"],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "resuming" not in run.stdout  # neither rank saw the other's checkpoint as a run to resume
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["epoch"] == pytest.approx(4 / (200 // (8 * 2)))  # 2 processes x 8 rows per step: 12 steps an epoch
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()


def test_countdown_world_rows_are_uniform_reference_solutions(tmp_path):
    from problems import countdown

    cfg = StepSFTConfig(output_dir=str(tmp_path / "cd"), world="countdown", max_steps=3, save_steps=10, data_workers=1,
                        **{**TINY, "max_train_rows": 48, "eval_problems": 4})
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "cd" / "data" / "train.jsonl").read_text().splitlines()]
    train_split = countdown.load_split("train")[:48]
    assert [r["question"] for r in rows] == [p.question for p in train_split]
    assert all(countdown.solved(r["question"], r["steps"]) for r in rows)
    assert json.loads((tmp_path / "cd" / "dev_greedy.json").read_text())["all"]["total"] == 4


def test_time_cosine_warms_up_by_steps_and_decays_by_the_clock(monkeypatch):
    """--schedule_by_time: linear warm-up over warmup steps, then the cosine over wall-clock time, 0 at the limit."""
    import math
    import types

    from trainers import common

    clock = [100.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: clock[0])
    weight = torch.nn.Parameter(torch.zeros(1))
    trainer = types.SimpleNamespace(args=types.SimpleNamespace(max_steps=10**6, get_warmup_steps=lambda steps: 4), optimizer=None)
    trainer.create_optimizer = lambda: setattr(trainer, "optimizer", torch.optim.SGD([weight], lr=2.0))
    common.time_cosine(trainer, minutes=1.0)  # the clock starts now, at 100 s
    rates = [trainer.lr_scheduler.get_last_lr()[0]]
    for seconds in [0, 0, 30, 45, 60, 90]:  # since the start, at each scheduler step
        clock[0] = 100.0 + seconds
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        rates.append(trainer.lr_scheduler.get_last_lr()[0])
    # warm-up 1/4, 2/4, 3/4 of the peak (2.0) with no time gone; then the cosine: half at 30 s of 60, 0 at 60 s and after
    assert rates == pytest.approx([0.5, 1.0, 1.5, 1.0, 2.0 * 0.5 * (1 + math.cos(math.pi * 0.75)), 0.0, 0.0])
