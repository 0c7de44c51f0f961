"""The countdown legality model: P(a step is legal) from the numbers before it and the step,
learned from oracle-labelled near-misses, served as the judge of `LegalityCappedPRM`.

The token PRM judges a step by the numbers it claims to leave and barely checks how it got
there (README: it passes every absent operand taken from four or more numbers). Whether a step
is legal is two checks, and this model has a part for each, both learned:

- the bookkeeping: the numbers before, less the two operands, plus the result, are the numbers
  the step claims to leave. Each multiset is read as the sum of its numbers' embeddings
  (DeepSets), and an MLP reads the sums beside the operands and the result;
- the arithmetic: a second MLP reads `a op b` and predicts its result among 1..1000, or "no
  legal result" (a division that is not exact, a result out of range). It is trained on every
  (a, op, b) the training steps hold, labelled by the rules (cross-entropy), and the judge reads
  its log-probability of the result the step writes: the model recomputes the step and compares.

Like the value model it memorizes rather than derives: the arithmetic of operands it never met
is a guess (trainers.countdown_legality reports how many of the dev steps' facts it met).

    judge = load_legality("models/countdown-legality")
    prm = LegalityCappedPRM(VLLMPRM(...), judge)     # problems.countdown_value

A model directory holds `config.json` ({"kind": "countdown-legality-net", "width", "hidden",
"judge_hidden"}) and `model.safetensors` (float16 on disk, float32 in use).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from engine.models import ModelDirError
from engine.types import Cost, Scores, StepPath
from problems import countdown as cd

KIND = "countdown-legality-net"
SLOTS = 7  # the most numbers a state it reads holds (six, and one a slip adds)
NONE = cd.MAX_VALUE + 1  # the index of a number out of 1..1000, and the result class "no legal result"
VOCAB = NONE + 1  # 0 pads a state
A, OP, B, C = 2 * SLOTS, 2 * SLOTS + 1, 2 * SLOTS + 2, 2 * SLOTS + 3  # the columns after the two states


def number_index(n: int) -> int:
    return n if 1 <= n <= cd.MAX_VALUE else NONE


def encode(state: Sequence[int], step: str) -> list[int] | None:
    """One row: the numbers before (padded with 0), the numbers the step claims to leave, a, op,
    b, c; None where the step does not parse or a state holds more than SLOTS numbers."""
    parsed = cd.parse_step(step)
    if parsed is None or len(state) > SLOTS or len(parsed[4]) > SLOTS:
        return None
    a, op, b, c, left = parsed
    pad = lambda xs: [number_index(x) for x in xs] + [0] * (SLOTS - len(xs))  # noqa: E731
    return pad(sorted(state)) + pad(left) + [number_index(a), cd.OPS.index(op), number_index(b), number_index(c)]


def result_class(a: int, op: str, b: int) -> int:
    """What the arithmetic part is taught for `a op b`: its result, or NONE where the rules give none."""
    c = cd.combine(a, op, b) if max(a, b) <= cd.MAX_VALUE else None
    return NONE if c is None else c


class LegalityNet(nn.Module):
    """Rows of `encode` in, one logit (legal) out; `results` gives the arithmetic part's logits."""

    def __init__(self, width: int, hidden: int, judge_hidden: int):
        super().__init__()
        self.width, self.hidden, self.judge_hidden = width, hidden, judge_hidden
        self.numbers = nn.Embedding(VOCAB, width, padding_idx=0)
        self.ops = nn.Embedding(len(cd.OPS), width)
        self.arithmetic = nn.Sequential(nn.Linear(3 * width, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, VOCAB))
        self.judge = nn.Sequential(nn.Linear(5 * width + 1, judge_hidden), nn.GELU(), nn.Linear(judge_hidden, judge_hidden), nn.GELU(),
                                   nn.Linear(judge_hidden, 1))

    def results(self, a: torch.Tensor, op: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.arithmetic(torch.cat([self.numbers(a), self.ops(op), self.numbers(b)], 1))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(self.results(rows[:, A], rows[:, OP], rows[:, B]).float(), 1).gather(1, rows[:, C : C + 1])
        e = self.numbers
        before, after = e(rows[:, :SLOTS]).sum(1), e(rows[:, SLOTS : 2 * SLOTS]).sum(1)
        return self.judge(torch.cat([before, after, e(rows[:, A]), e(rows[:, B]), e(rows[:, C]), logp.to(before.dtype)], 1)).squeeze(-1)


def predict(net: LegalityNet, rows: torch.Tensor) -> torch.Tensor:
    """P(legal) of each row, in chunks."""
    with torch.no_grad():
        return torch.cat([torch.sigmoid(net(rows[k : k + 65536]).float()) for k in range(0, len(rows), 65536)]) if len(rows) else torch.empty(0)


class LegalityModel:
    """The net served like a PRM of one-step paths: each path is a step posed from the numbers
    before it (`countdown_value.posed_steps`), scored P(legal). A path it cannot read (not a
    countdown question, a step that does not parse) scores 1.0, which leaves a cap unchanged:
    the token PRM judges those. Answers are kept per (numbers, step) until reset_caches."""

    def __init__(self, net: LegalityNet):
        self.net = net.eval()
        self.known: dict[tuple[tuple[int, ...], str], float] = {}

    def reset_caches(self) -> None:
        self.known.clear()

    def score(self, paths: Sequence[StepPath]) -> Scores:
        keys = [(parsed[1], path.steps[0]) if (parsed := cd.parse_question(path.question)) and len(path.steps) == 1 else None for path in paths]
        new = {key: row for key in dict.fromkeys(keys) if key is not None and key not in self.known and (row := encode(*key)) is not None}
        if new:
            self.known.update(zip(new, predict(self.net, torch.tensor(list(new.values()))).tolist()))
        return Scores([[self.known.get(key, 1.0)] for key in keys], Cost())  # what it cannot read leaves the cap unchanged


def save_legality(net: LegalityNet, out_dir: str | Path) -> None:
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to(torch.float16).cpu().contiguous() for k, v in net.state_dict().items()}, str(out / "model.safetensors"))
    config = {"kind": KIND, "width": net.width, "hidden": net.hidden, "judge_hidden": net.judge_hidden}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def is_legality_dir(model_dir: str | Path) -> bool:
    try:
        return json.loads((Path(model_dir) / "config.json").read_text()).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def load_legality(model_dir: str | Path) -> LegalityModel:
    """The model saved by save_legality, or a ModelDirError saying what is missing."""
    from safetensors.torch import load_file

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ModelDirError(f"legality model directory {path} has no config.json (train one: python -m trainers.countdown_legality)")
    try:
        config = json.loads((path / "config.json").read_text())
        if config.get("kind") != KIND:
            raise ValueError(f"kind {config.get('kind')!r}, not {KIND!r}")
        net = LegalityNet(config["width"], config["hidden"], config["judge_hidden"])
        net.load_state_dict({k: v.float() for k, v in load_file(str(path / "model.safetensors")).items()})
    except (KeyError, TypeError, ValueError, FileNotFoundError, RuntimeError, AttributeError) as e:
        raise ModelDirError(f"legality model directory {path}: not a countdown legality model ({type(e).__name__}: {e})") from None
    return LegalityModel(net)
