"""Recipes: one YAML file per known setup (recipes/*.yaml): which policy and PRM, and the
step format each speaks.

    recipe = load_recipe("recipes/smollm2-shepherd.yaml")
    policy = recipe.policy()          # engine.Policy with the recipe's format
    prm = recipe.prm()                # VLLMPRM (token PRM) or VLLMClassifierPRM (head at a step tag)
    python -m evals.run --recipe recipes/smollm2-shepherd.yaml --dataset data/gsm8k.jsonl --strategy beam

A recipe file:

    name: smollm2-shepherd
    policy:
      model: local:smollm2-135m-instruct   # a directory, a hub id (org/name[@revision]), or local:NAME (recipes.local_models builds it)
      url: http://localhost:8000           # optional: a running `vllm serve` of that model instead of an engine in this process
      format: {sep: "\\n\\n", eos: "<|im_end|>", chat_template: true, answer_format: boxed}
    prm:
      kind: token                          # token: label tokens read at SEP; classifier: a 2-class head at SEP
      model: local:shepherd-prm-standin
      value: models/countdown-value        # optional, countdown only: state tables that cap the PRM's score (problems.countdown_value)
      legality: models/countdown-legality  # optional, countdown only: a legality model that caps it too (countdown_value.LegalityCappedPRM)
      format: {sep: "ки", eos: "<|im_end|>", positive: "+", negative: "-", chat_template: false}
    engine: {max_model_len: 2048}          # any EngineConfig field (vLLM knobs)
    search: {max_step_tokens: 128}         # any strategies.SearchConfig field
    dataset: arith-test                    # default --dataset
    world: arith                           # models trained on an embedded world: other questions are an error

Relative model paths are relative to the repository root. Every key is checked: a typo is
an error naming the key, not a silently ignored setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.format import StepFormat
from engine.models import HUB_ID, REPO_ROOT
from engine.policy import EngineConfig
from engine.prm import PRM_KINDS
from problems.worlds import WORLDS, get_world, question_error
from strategies.base import SearchConfig


class RecipeError(ValueError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    model: str  # a directory, a hub id, or local:NAME
    format: StepFormat
    kind: str = "token"  # PRM only
    url: str | None = None  # a running `vllm serve` of this model to use instead of an engine in this process
    value: str | None = None  # PRM only: a countdown value model (state tables) that caps the PRM's scores
    legality: str | None = None  # PRM only: a countdown legality model (problems.countdown_legality, or a token PRM of one-step legality) that caps them too

    def path(self) -> Path | str:
        """The model to load: a local:NAME built on this machine, a directory (relative to the
        repository root), or a hub id as it is (engine.models.resolve_model resolves it)."""
        if self.model.startswith("local:"):
            from recipes.local_models import local_model

            return local_model(self.model.removeprefix("local:"))
        path = Path(self.model).expanduser()
        if path.is_absolute():
            return path
        if not (REPO_ROOT / path).exists() and HUB_ID.fullmatch(self.model):
            return self.model
        return REPO_ROOT / path


@dataclass(frozen=True)
class Recipe:
    name: str
    policy_spec: ModelSpec
    prm_spec: ModelSpec | None = None
    engine: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    world: str | None = None  # the embedded world whose questions alone the models take

    def check_questions(self, problems) -> None:
        """With a world: every question is one its models can take, or a RecipeError naming
        the rows and their characters (before any work is done)."""
        if self.world is None:
            return
        world = get_world(self.world)
        bad = [(p, error) for p in problems if (error := question_error(world, p.question))]
        if bad:
            rows = "; ".join(f"row {p.id!r} {p.question[:40]!r}: {error}" for p, error in bad[:5])
            raise RecipeError(f"{len(bad)} of {len(problems)} questions are not {self.world} questions, which recipe {self.name!r}'s models "
                              f"take: {rows}{' ...' if len(bad) > 5 else ''}")

    def engine_config(self, **overrides) -> EngineConfig:
        return EngineConfig(**{**self.engine, **overrides})

    def policy(self, config: EngineConfig | None = None, model: str | None = None, url: str | None = None):
        """The policy: in this process, or the server at url (argument, else the recipe's)."""
        from engine import Policy

        return Policy(model or self.policy_spec.path(), self.policy_spec.format, config or self.engine_config(), url=url or self.policy_spec.url)

    def prm(self, config: EngineConfig | None = None, model: str | None = None, backend: str = "vllm", url: str | None = None,
            value: str | None = None, legality: str | None = None):
        """The PRM: vLLM in this process, the server at url (argument, else the recipe's), or transformers (backend hf);
        capped by a value model and a legality model (each: argument, else the recipe's; "none": without it).
        A legality model is a countdown_legality net (trainers.countdown_legality), or a token PRM of one-step legality
        (trainers.prm --legality_problems) served like the PRM (same backend, same step format), in this process."""
        from engine import HFPRM, VLLMPRM, VLLMClassifierPRM

        if self.prm_spec is None:
            raise RecipeError(f"recipe {self.name!r} has no PRM")
        path, fmt, url = model or self.prm_spec.path(), self.prm_spec.format, url or self.prm_spec.url
        value = value or self.prm_spec.value
        value = None if value == "none" else value
        if value and self.world != "countdown":
            raise RecipeError(f"recipe {self.name!r}: a value model reads countdown states; the recipe's world is {self.world!r}")
        legality = legality or self.prm_spec.legality
        legality = None if legality == "none" else legality
        if legality and (self.world != "countdown" or self.prm_spec.kind != "token"):
            raise RecipeError(f"recipe {self.name!r}: a legality model reads countdown steps beside a token PRM; the recipe's world is "
                              f"{self.world!r}, its PRM {self.prm_spec.kind!r}")
        tables = self._value_tables(value) if value else None  # a bad directory is an error before an engine starts
        legality_path = self._local_path(legality) if legality else None
        if legality_path is not None and not (legality_path / "config.json").is_file():
            raise RecipeError(f"legality model directory {legality_path} has no config.json (train one: python -m trainers.countdown_legality)")
        judge = None  # a countdown_legality net; else the legality model is a token PRM, served below
        if legality_path is not None:
            from problems.countdown_legality import is_legality_dir, load_legality

            judge = load_legality(legality_path) if is_legality_dir(legality_path) else None
        if backend == "hf":
            prm = HFPRM(path, fmt, kind=self.prm_spec.kind)
        elif self.prm_spec.kind == "classifier":
            if url:
                raise RecipeError("a classifier PRM is served in this process only (vLLM's pooling path); drop its url")
            prm = VLLMClassifierPRM(path, fmt, config or self.engine_config())
        else:
            prm = VLLMPRM(path, fmt, config or self.engine_config(), url=url)
        from problems.countdown_value import LegalityCappedPRM, ValueCappedPRM

        if legality_path is not None:
            if judge is None:
                judge = HFPRM(legality_path, fmt) if backend == "hf" else VLLMPRM(legality_path, fmt, config or self.engine_config())
            prm = LegalityCappedPRM(prm, judge)
        return prm if tables is None else ValueCappedPRM(prm, tables)

    @staticmethod
    def _local_path(model: str) -> Path:
        path = Path(model).expanduser()
        return path if path.is_absolute() or path.exists() else REPO_ROOT / path

    @classmethod
    def _value_tables(cls, value: str):
        from problems.countdown_value import load_tables

        return load_tables(cls._local_path(value))


def _check_keys(where: str, given: dict, allowed) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}")


def _model_spec(where: str, raw: Any, prm: bool) -> ModelSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), str):
        raise RecipeError(f"{where}: needs a mapping with a 'model' (a directory, a hub id or local:NAME)")
    _check_keys(where, raw, {"model", "format", "kind", "url", "value", "legality"} if prm else {"model", "format", "url"})
    fmt_raw = raw.get("format", {})
    if not isinstance(fmt_raw, dict):
        raise RecipeError(f"{where}.format: must be a mapping of StepFormat fields")
    _check_keys(f"{where}.format", fmt_raw, {f.name for f in fields(StepFormat)})
    try:
        fmt = StepFormat(**fmt_raw)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{where}.format: {e}") from None
    kind = raw.get("kind", "token")
    if kind not in PRM_KINDS:
        raise RecipeError(f"{where}.kind: must be one of {PRM_KINDS}, got {kind!r}")
    for key in ("value", "legality"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise RecipeError(f"{where}.{key}: must be a directory of a countdown {key} model")
    return ModelSpec(raw["model"], fmt, kind, raw.get("url"), raw.get("value"), raw.get("legality"))


def load_recipe(path: str | Path) -> Recipe:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: expected a mapping at the top level")
    _check_keys(str(path), raw, {"name", "description", "policy", "prm", "engine", "search", "dataset", "world"})
    engine, search = raw.get("engine") or {}, raw.get("search") or {}
    if raw.get("world") is not None and raw["world"] not in WORLDS:
        raise RecipeError(f"{path}: world must be one of {', '.join(sorted(WORLDS))}, got {raw['world']!r}")
    _check_keys(f"{path}: engine", engine, {f.name for f in fields(EngineConfig)})
    _check_keys(f"{path}: search", search, {f.name for f in fields(SearchConfig)})
    return Recipe(
        name=str(raw.get("name", path.stem)),
        policy_spec=_model_spec(f"{path}: policy", raw.get("policy"), prm=False),
        prm_spec=_model_spec(f"{path}: prm", raw["prm"], prm=True) if raw.get("prm") is not None else None,
        engine=engine,
        search=search,
        dataset=raw.get("dataset"),
        world=raw.get("world"),
    )
