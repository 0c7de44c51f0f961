"""What every trainer does around transformers' Trainer: resume, save, and the CLI."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from transformers import HfArgumentParser, Trainer
from transformers.trainer_utils import get_last_checkpoint

from engine.models import ModelDirError
from evals.datasets import DatasetError


def fit(trainer: Trainer, output_dir: str) -> Path:
    """Train (resuming from the last checkpoint in output_dir, if any), then save an HF model directory."""
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
    except (ModelDirError, DatasetError) as e:
        sys.exit(f"error: {e}")
