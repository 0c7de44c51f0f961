"""Model directories: where the shipped models live, and loading with clear errors."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
DEFAULT_POLICY = MODELS_DIR / "policy"
DEFAULT_PRM = MODELS_DIR / "prm"


class ModelDirError(ValueError):
    """A model directory that is missing, incomplete, or does not fit the step format."""


def check_model_dir(path: str | Path, role: str = "model") -> Path:
    """The path, if it holds an HF causal-LM directory (config, weights, tokenizer)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(f"{role} directory not found: {path}")
    if not (path / "config.json").is_file():
        raise ModelDirError(f"{role} directory {path} has no config.json (not a Hugging Face model directory)")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise ModelDirError(f"{role} directory {path} has no weights (*.safetensors or *.bin)")
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer_config.json").is_file():
        raise ModelDirError(f"{role} directory {path} has no tokenizer files")
    return path


HUB_ID = re.compile(r"[\w.-]+/[\w.-]+(@[\w./-]+)?")  # org/name, optionally @revision (a branch, tag or commit)


def resolve_model(spec: str | Path, role: str = "model") -> Path:
    """A model argument as a checked local directory: a directory as it is, or a hub id
    (`org/name[@revision]`) resolved through huggingface_hub and its cache, as transformers and
    vLLM resolve it: from the cache when it is there (always when HF_HUB_OFFLINE=1 or there is no
    network), else downloaded into it. A missing one is a clear error naming the id."""
    path = Path(spec).expanduser()
    if path.exists() or not HUB_ID.fullmatch(str(spec)):
        return check_model_dir(path, role)
    from huggingface_hub import constants, snapshot_download

    repo_id, _, revision = str(spec).partition("@")
    try:
        local = snapshot_download(repo_id, revision=revision or None)  # falls back to the cache offline
    except Exception as e:  # huggingface_hub raises many kinds (not cached, not on the hub, gated, bad revision)
        raise ModelDirError(
            f"{role} {str(spec)!r} is not a local directory, and the Hugging Face hub id is not available"
            f" ({type(e).__name__}: {str(e).splitlines()[0][:160]}); the cache is {constants.HF_HUB_CACHE}"
            f"{' and HF_HUB_OFFLINE is set' if constants.HF_HUB_OFFLINE else ''}: fetch it where there is network"
            f" (`hf download {repo_id}{f' --revision {revision}' if revision else ''}`) and copy the cache here"
        ) from None
    return check_model_dir(local, role)


def token_id(tokenizer, text: str, role: str, where: str) -> int:
    """The id of a text that must be exactly one token (SEP, EOS, label tokens)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1 or ids[0] == tokenizer.unk_token_id:
        raise ModelDirError(
            f"the tokenizer of {where} has no single token for the {role} {text!r} (it encodes to {ids}); "
            "train with this step format, or pass a StepFormat (or a --recipe) that matches the model"
        )
    return ids[0]


def separator_ids(tokenizer, sep: str, where: str) -> tuple[int, ...]:
    """SEP's token ids as they sit between two steps.

    A special or added token (`<sep>`, `ки`, `<extra_0>`) is itself. A whitespace separator
    such as "\\n\\n" is taken as the tokenizer writes it between two words: byte-level BPE
    writes "a\\n\\nb" as a, "\\n", "\\n", b, never with its single "\\n\\n" token, so that is how
    a model has seen (and writes) it. Any other separator must be one token.
    """
    ids = tokenizer(sep, add_special_tokens=False)["input_ids"]
    if len(ids) == 1 and (sep in tokenizer.all_special_tokens or sep in tokenizer.get_added_vocab()):
        return (ids[0],)
    if sep.strip() == "":
        x = tokenizer("x", add_special_tokens=False)["input_ids"]
        probe = tokenizer("x" + sep + "x", add_special_tokens=False)["input_ids"]
        middle = probe[len(x) : -1]
        if probe[: len(x)] == x and tokenizer.decode(probe[-1:]) == "x" and middle and tokenizer.unk_token_id not in middle:
            return tuple(middle)
    return (token_id(tokenizer, sep, "step separator", where),)
