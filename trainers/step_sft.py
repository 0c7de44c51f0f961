"""Step-SFT: teach a causal LM to answer `prompt` with `step1 SEP step2 SEP ... EOS`.

    python -m trainers.step_sft --output_dir models/policy            # the default policy
    python -m trainers.step_sft --init_model DIR --train_file rows.jsonl --output_dir out

The loss covers response tokens only (the prompt's labels are -100). Without
--init_model a fresh Llama is built from the size options and the embedded world's
character tokenizer; with it, any local HF causal-LM directory is fine-tuned. The loop is
transformers' Trainer, so --gradient_accumulation_steps, --save_steps, logging and
`torchrun`/`accelerate launch` work as usual. Rerunning with the same --output_dir
resumes from its last checkpoint. The result is a plain HF model directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer

from engine.encoding import StepEncoder
from engine.models import resolve_model
from problems import arith
from problems.worlds import get_world
from trainers.common import FreshModelArguments, StepTrainingArguments, cli, deepen, fit, fresh_llama
from trainers.data import load_sft_jsonl, sft_dataset, world_sft_rows, write_jsonl
from trainers.greedy import greedy_report


@dataclass
class StepSFTConfig(StepTrainingArguments, FreshModelArguments):
    """Step-SFT options; every transformers TrainingArguments option is accepted too."""

    init_model: str | None = field(default=None, metadata={"help": "Local HF causal-LM directory to fine-tune. Default: a fresh Llama from the size options."})
    deepen: int = field(default=1, metadata={"help": "Repeat each layer of --init_model this many times, the copies starting as identity maps (trainers.common.deepen): a deeper policy that starts as the init model."})
    train_file: str | None = field(default=None, metadata={"help": "JSONL rows {'question' or 'prompt', 'steps': [...]}. Default: the embedded arith train split."})
    max_train_rows: int | None = field(default=None, metadata={"help": "Use at most this many training rows."})
    world: str = field(default="arith", metadata={"help": "Embedded world of the default data: arith (its reference solutions) or countdown (the train split and, past its 20,000, fresh problems up to --max_train_rows; each solution drawn uniformly among all)."})
    solutions_per_problem: int = field(default=1, metadata={"help": "Countdown: solutions drawn per training problem (uniformly, with replacement)."})
    data_workers: int = field(default=2, metadata={"help": "Processes that draw countdown solutions."})
    train_operands: str = field(default="2-4", metadata={"help": "Embedded world: operand range LO-HI of the training problems. 2-4 is the fixed train split; any other range draws --max_train_rows (default 200000) fresh problems, none from dev or test."})
    eval_problems: int = field(default=200, metadata={"help": "After training, greedy accuracy on this many dev problems (0: skip)."})
    # Defaults that differ from StepTrainingArguments', tuned for the embedded world on a CPU.
    output_dir: str = field(default="models/policy", metadata={"help": "Where checkpoints and the final model go."})
    max_steps: int = field(default=5000, metadata={"help": "Total optimizer steps."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Batch size per device."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate."})
    warmup_steps: float = field(default=200, metadata={"help": "Linear warm-up steps."})
    logging_steps: float = field(default=100, metadata={"help": "Log every this many steps."})
    save_steps: float = field(default=500, metadata={"help": "Checkpoint every this many steps."})


def train_problems(cfg: StepSFTConfig) -> list:
    """The embedded world's training problems: the train split, or fresh ones of --train_operands
    (arith); the train split topped up with fresh problems to --max_train_rows (countdown)."""
    if cfg.world != "arith":
        world = get_world(cfg.world)
        problems = world.load_split("train")[: cfg.max_train_rows]
        extra = (cfg.max_train_rows or len(problems)) - len(problems)
        return problems + (world.fresh_problems(extra, seed=cfg.seed + 11) if extra > 0 else [])
    try:
        lo, hi = (int(x) for x in cfg.train_operands.split("-"))
    except ValueError:
        raise ValueError(f"--train_operands must look like 2-6, got {cfg.train_operands!r}") from None
    if (lo, hi) == arith.SPLITS["train"]["n_operands"]:
        return arith.load_split("train")
    return arith.fresh_problems(cfg.max_train_rows or arith.SPLITS["train"]["size"], seed=cfg.seed + 11, n_operands=(lo, hi))


def default_rows(cfg: StepSFTConfig) -> Path:
    """The embedded world's rows, written once to <output_dir>/data/train.jsonl and reused on a
    rerun (countdown's solutions take minutes to draw)."""
    path = Path(cfg.output_dir) / "data" / "train.jsonl"
    if not path.is_file():
        write_jsonl(path, world_sft_rows(train_problems(cfg), cfg.data_workers, cfg.solutions_per_problem))
    return path


def load_model_and_tokenizer(cfg: StepSFTConfig):
    fmt = cfg.step_format
    if cfg.init_model is None:
        return fresh_llama(cfg, fmt, cfg.seed)
    path = resolve_model(cfg.init_model, "init model")
    tokenizer = StepEncoder.load(path, fmt, "init model").tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return deepen(AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32), cfg.deepen), tokenizer


def train(cfg: StepSFTConfig) -> Trainer:
    fmt = cfg.step_format
    model, tokenizer = load_model_and_tokenizer(cfg)
    rows = load_sft_jsonl(cfg.train_file or default_rows(cfg))
    rows = rows[: cfg.max_train_rows * cfg.solutions_per_problem] if cfg.max_train_rows else rows
    dataset = sft_dataset(rows, StepEncoder(tokenizer, fmt), cfg.max_length, cfg.dataset_num_proc)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; {len(dataset)} training rows")

    trainer = Trainer(
        model=model,
        args=cfg,
        train_dataset=dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
        processing_class=tokenizer,
    )
    out = fit(trainer, cfg.output_dir)
    if cfg.eval_problems and not cfg.train_file:
        world = get_world(cfg.world)
        report = greedy_report(model, StepEncoder(tokenizer, fmt), world.load_split("dev")[: cfg.eval_problems], world)
        print(f"dev greedy accuracy: {report}")
        (out / "dev_greedy.json").write_text(json.dumps(report, indent=2) + "\n")
    return trainer


def main(argv: list[str] | None = None) -> None:
    cli(StepSFTConfig, train, argv)


if __name__ == "__main__":
    main()
