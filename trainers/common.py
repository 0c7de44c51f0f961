"""What every trainer does around transformers' Trainer: resume, save, and the CLI."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import HfArgumentParser, LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from engine.format import StepFormat
from engine.models import ModelDirError
from problems.datasets import DatasetError
from recipes import RecipeError
from trainers.tokenizer import build_char_tokenizer


@dataclass
class StepTrainingArguments(TrainingArguments):
    """What every trainer's config shares: the step format, a length limit, CPU-friendly defaults."""

    max_length: int = field(default=512, metadata={"help": "Drop rows longer than this many tokens."})
    sep: str = field(default=StepFormat.sep, metadata={"help": "Step separator token."})
    eos: str = field(default=StepFormat.eos, metadata={"help": "End-of-sequence token."})
    positive: str = field(default=StepFormat.positive, metadata={"help": "PRM label token for a correct step."})
    negative: str = field(default=StepFormat.negative, metadata={"help": "PRM label token for a wrong step."})
    prompt_template: str = field(default=StepFormat.prompt_template, metadata={"help": "Prompt template with {question}."})
    max_train_minutes: float | None = field(default=None, metadata={"help": "Stop training after this many minutes (then save as usual); for a lent machine with a time limit."})
    schedule_by_time: bool = field(default=False, metadata={"help": "With --max_train_minutes: after the --warmup_steps warm-up, a cosine decay over the time limit instead of over --max_steps, so the run ends annealed however fast the machine is (--max_steps is then only an upper bound)."})
    dataset_num_proc: int | None = field(default=None, metadata={"help": "Processes that tokenize the training rows (default: one)."})
    recipe: str | None = field(default=None, metadata={"help": "A recipes/*.yaml file: its step format (the policy's, or the PRM's for trainers.prm) replaces the format options above."})
    # Defaults that differ from TrainingArguments'.
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most this many checkpoints."})
    dataloader_drop_last: bool = field(default=True, metadata={"help": "Drop the last incomplete batch."})
    dataloader_pin_memory: bool = field(default=False, metadata={"help": "Pin batches in memory (only useful on a GPU)."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep every dataset column (the collators use them)."})

    def __post_init__(self):
        # torchrun / accelerate launch on a CPU-only machine: without use_cpu the ranks do not
        # form a process group and each trains alone; DDP on CPU needs the gloo backend
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch

            if not torch.cuda.is_available():
                self.use_cpu = True
                self.ddp_backend = self.ddp_backend or "gloo"
        if self.schedule_by_time and not self.max_train_minutes:
            raise ValueError("--schedule_by_time needs --max_train_minutes: the time the cosine runs over")
        super().__post_init__()

    format_role = "policy"  # which model's format a recipe supplies: "policy" or "prm"

    @property
    def step_format(self) -> StepFormat:
        """The format of the model this trainer trains."""
        return self.format_of(self.format_role)

    def format_of(self, role: str) -> StepFormat:
        """The recipe's policy or PRM format; without a recipe, the format options (one for both)."""
        if self.recipe:
            from recipes import load_recipe

            recipe = load_recipe(self.recipe)
            spec = recipe.prm_spec if role == "prm" else recipe.policy_spec
            if spec is None:
                raise RecipeError(f"recipe {self.recipe} has no {role}")
            return spec.format
        return StepFormat(sep=self.sep, eos=self.eos, positive=self.positive, negative=self.negative, prompt_template=self.prompt_template)


@dataclass
class FreshModelArguments:
    """The size of a fresh (randomly initialized) Llama, for trainers that can start from one."""

    hidden_size: int = field(default=256, metadata={"help": "Fresh model: width."})
    num_layers: int = field(default=4, metadata={"help": "Fresh model: transformer layers."})
    num_heads: int = field(default=4, metadata={"help": "Fresh model: attention heads."})
    intermediate_size: int = field(default=768, metadata={"help": "Fresh model: MLP width."})


def fresh_llama(cfg: FreshModelArguments, fmt: StepFormat, seed: int):
    """A randomly initialized Llama of cfg's size (seeded) and the embedded worlds' character tokenizer."""
    import torch

    tokenizer = build_char_tokenizer(fmt)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config), tokenizer


def deepen(model, times: int):
    """The model with each decoder layer repeated `times` times, the same function as before.

    Every copy starts with its weights (so its features are there to use) but with its two
    output projections (attention o_proj, MLP down_proj) at zero, so it adds nothing to the
    residual stream until training moves them: a deeper model that starts where the trained
    one ended (function-preserving growth, as in Net2Net's deeper operator). Llama-style
    decoders (model.model.layers, each with self_attn.o_proj and mlp.down_proj).
    """
    import copy

    import torch

    if times < 1:
        raise ValueError(f"deepen times must be >= 1, got {times}")
    if times == 1:
        return model
    layers = []
    for layer in model.model.layers:
        layers.append(layer)
        for _ in range(times - 1):
            twin = copy.deepcopy(layer)
            with torch.no_grad():
                twin.self_attn.o_proj.weight.zero_()
                twin.mlp.down_proj.weight.zero_()
            layers.append(twin)
    for k, layer in enumerate(layers):
        layer.self_attn.layer_idx = k  # the KV cache indexes layers by this
    model.model.layers = torch.nn.ModuleList(layers)
    model.config.num_hidden_layers = len(layers)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [t for t in model.config.layer_types for _ in range(times)]
    return model


class TimeLimit(TrainerCallback):
    """Ends training once `minutes` have passed since it started (the model is then saved as usual)."""

    def __init__(self, minutes: float):
        self.seconds, self.start = minutes * 60, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self.start > self.seconds:
            print(f"time limit: stopping at step {state.global_step} after {self.seconds / 60:g} minutes")
            control.should_training_stop = True


def time_cosine_factor(warmup_steps: int, minutes: float):
    """A LambdaLR factor over wall-clock time: linear warm-up over `warmup_steps` optimizer steps,
    then cosine decay to 0 at `minutes` after now (make it just before training starts)."""
    import math

    warmup, seconds, start = max(1, warmup_steps), minutes * 60, time.monotonic()

    def factor(step: int) -> float:
        done = min(1.0, (time.monotonic() - start) / seconds)
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * done))

    return factor


def time_cosine(trainer: Trainer, minutes: float) -> None:
    """Give the trainer the time_cosine_factor schedule over args.warmup_steps and `minutes`
    (TimeLimit stops the run there). The trainer uses a scheduler set before train()."""
    import torch

    trainer.create_optimizer()
    factor = time_cosine_factor(trainer.args.get_warmup_steps(trainer.args.max_steps), minutes)
    trainer.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, factor)


def fit(trainer: Trainer, output_dir: str) -> Path:
    """trainer.args: a StepTrainingArguments. Train (resuming from the last checkpoint in output_dir, if any), then save an HF model directory."""
    if trainer.args.max_train_minutes:
        trainer.add_callback(TimeLimit(trainer.args.max_train_minutes))
        if trainer.args.schedule_by_time:
            time_cosine(trainer, trainer.args.max_train_minutes)
    last = get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
    if last:
        print(f"resuming from {last}")
    trainer.train(resume_from_checkpoint=last)
    trainer.save_model(output_dir)  # config + safetensors + tokenizer
    trainer.model.generation_config.save_pretrained(output_dir)
    out = Path(output_dir)
    (out / "train_config.json").write_text(json.dumps({k: str(v) for k, v in asdict(trainer.args).items()}, indent=2) + "\n")
    return out


def cli(config_class, train, argv: list[str] | None = None) -> None:
    """Parse a trainer's config dataclass from the command line and run it; bad input exits with a clear error."""
    (cfg,) = HfArgumentParser(config_class).parse_args_into_dataclasses(argv)
    try:
        train(cfg)
    except (ModelDirError, DatasetError, RecipeError) as e:
        sys.exit(f"error: {e}")
