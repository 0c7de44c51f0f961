"""The countdown legality model (problems.countdown_legality) and its trainer: rows by hand, the
served scorer's contract, the trainer's data by the rules, and the shipped model on the slips
the token PRM passes."""

import json

import pytest
import torch

from engine.models import MODELS_DIR, ModelDirError
from engine.types import StepPath
from problems import countdown as cd
from problems import countdown_legality as cl

SHIPPED = MODELS_DIR / "countdown-legality"


def test_rows_and_result_classes_by_hand():
    row = cl.encode((3, 7, 14), "14/7=2|2 3")
    assert row == [3, 7, 14, 0, 0, 0, 0] + [2, 3, 0, 0, 0, 0, 0] + [14, 3, 7, 2]  # before, left, a, op ("/" is the 4th), b, c
    assert cl.encode((3, 7), "999+9=1008|3 1008")[cl.SLOTS : cl.SLOTS + 2] == [3, cl.NONE]  # out of 1..1000: one index
    assert cl.encode((3, 7), "3+7=10") is None and cl.encode(tuple(range(1, 9)), "1+2=3|3 3 4 5 6 7 8") is None
    assert [cl.result_class(*f) for f in [(12, "+", 3), (12, "-", 3), (12, "*", 3), (12, "/", 3)]] == [15, 9, 36, 4]
    assert [cl.result_class(*f) for f in [(25, "/", 2), (3, "-", 3), (100, "*", 11), (1001, "-", 1)]] == [cl.NONE] * 4


def tiny_net() -> cl.LegalityNet:
    torch.manual_seed(0)
    return cl.LegalityNet(width=4, hidden=8, judge_hidden=8)


def test_served_scores_read_posed_steps_once_and_leave_unreadable_ones_at_one(tmp_path):
    """LegalityModel: one score a one-step path, each (numbers, step) computed once until reset; what it
    cannot read scores 1.0 (a cap that changes nothing); saved and loaded it scores the same (float16 weights)."""
    net = tiny_net()
    model = cl.LegalityModel(net)
    paths = [StepPath("17:3 7 14", ("14/7=2|2 3",)), StepPath("24:3 7 14", ("14/7=2|2 3",)), StepPath("17:3 7 14", ("14/7=2",)),
             StepPath("what is 2+2", ("4",))]
    scores = model.score(paths).scores
    assert [len(s) for s in scores] == [1, 1, 1, 1] and scores[2:] == [[1.0], [1.0]]
    expected = torch.sigmoid(net(torch.tensor([cl.encode((3, 7, 14), "14/7=2|2 3")]))).item()
    assert scores[0][0] == scores[1][0] == pytest.approx(expected)  # the target does not enter
    assert list(model.known) == [((3, 7, 14), "14/7=2|2 3")]
    model.reset_caches()
    assert not model.known
    cl.save_legality(net, tmp_path)
    assert cl.is_legality_dir(tmp_path) and not cl.is_legality_dir(MODELS_DIR / "countdown-prm")
    assert cl.load_legality(tmp_path).score(paths[:1]).scores[0][0] == pytest.approx(expected, abs=5e-3)


def test_legality_model_directory_errors(tmp_path):
    with pytest.raises(ModelDirError, match="no config.json"):
        cl.load_legality(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"kind": "countdown-state-tables"}))
    with pytest.raises(ModelDirError, match="not a countdown legality model"):
        cl.load_legality(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"kind": cl.KIND, "width": 4, "hidden": 8, "judge_hidden": 8}))
    with pytest.raises(ModelDirError, match="not a countdown legality model"):  # no weights
        cl.load_legality(tmp_path)


def test_trainer_rows_are_labelled_by_the_rules_and_training_is_seeded(tmp_path):
    from trainers.countdown_legality import arithmetic_facts, main, walk_rows

    rows = [r for seed in range(30) for r in walk_rows(seed)]
    assert rows == [r for seed in range(30) for r in walk_rows(seed)]
    assert all(legal == (cd.apply_step(state, step) is not None) for state, step, legal in rows)
    kinds = {cd.slip_kind(state, step) for state, step, legal in rows if not legal}
    assert {"result", "left", "absent", "inexact", "twice"} <= kinds
    assert 0.25 < sum(legal for *_, legal in rows) / len(rows) < 0.5
    x = torch.tensor([cl.encode((25, 2, 3), "25/2=13|3 13")])
    facts, results = arithmetic_facts(x, grid=2)
    assert dict(zip(map(tuple, facts.tolist()), results.tolist())) == {
        (1, 0, 1): 2, (1, 1, 1): cl.NONE, (1, 2, 1): 1, (1, 3, 1): 1, (1, 0, 2): 3, (1, 1, 2): cl.NONE, (1, 2, 2): 2, (1, 3, 2): cl.NONE,
        (2, 0, 1): 3, (2, 1, 1): 1, (2, 2, 1): 2, (2, 3, 1): 2, (2, 0, 2): 4, (2, 1, 2): cl.NONE, (2, 2, 2): 4, (2, 3, 2): 1,
        (25, 3, 2): cl.NONE}
    args = ["--walks", "40", "--steps", "3", "--grid", "5", "--width", "4", "--hidden", "8", "--judge_hidden", "8", "--batch", "16",
            "--procs", "1", "--device", "cpu", "--dev_problems", "12"]
    main(args + ["--output_dir", str(tmp_path / "a")])
    main(args + ["--output_dir", str(tmp_path / "b")])
    a, b = cl.load_legality(tmp_path / "a").net, cl.load_legality(tmp_path / "b").net
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["steps"] == 3 and report["dev"]["legal"]["steps"] > 30 and 0 < report["dev"]["legal_facts_met_in_training"] < 1


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="no shipped legality model")
def test_the_shipped_legality_model_catches_the_slips_the_token_prm_passes():
    """The three illegal steps dfs@16 accepted on the test split with the token PRM (README), each posed from numbers
    it could have been taken from, beside a legal step from the same numbers."""
    model = cl.load_legality(SHIPPED)
    slips = [((3, 4, 10, 14), "14/7=2|2 3 10"),  # test-v1-00327: the 7 was spent
             ((3, 6, 8, 88), "9-3=6|6 6 88"),  # test-v1-00511: no 9
             ((1, 2, 25), "25/2=13|1 13")]  # test-v1-00753: not exact
    legal = [((3, 4, 10, 14), "14-4=10|3 10 10"), ((3, 6, 8, 88), "8-6=2|2 3 88"), ((1, 2, 25), "25-2=23|1 23")]
    for state, step in slips:
        assert cd.slip_kind(state, step) is not None
    for state, step in legal:
        assert cd.apply_step(state, step) is not None
    scores = model.score([StepPath(cd.question_text(50, s), (st,)) for s, st in slips + legal]).scores
    assert all(s[0] < 0.1 for s in scores[:3]) and all(s[0] > 0.9 for s in scores[3:]), scores
