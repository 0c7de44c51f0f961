"""The countdown world: generator, splits, the step verifier, the grader and the oracle labels."""

import hashlib
import json
import random

import pytest

from engine.models import MODELS_DIR
from problems import countdown as cd

Q = "24:3 7 8 12"
SOLUTION = ["8-7=1|1 3 12", "3-1=2|2 12", "12*2=24|24"]


def fingerprint(problems) -> str:
    return hashlib.sha256("\n".join(f"{p.id} {p.question}" for p in problems).encode()).hexdigest()[:16]


def test_generation_is_deterministic_and_every_problem_is_solved_by_its_reference():
    a, b = cd.generate_problems(40, seed=5), cd.generate_problems(40, seed=5)
    assert a == b and a != cd.generate_problems(40, seed=6)
    for p in a[:24] + [p for p in a if p.difficulty < 6][:16]:  # six-number references cost ~0.5 s each
        assert p.question == cd.question_text(p.target, p.numbers)
        assert cd.MIN_TARGET <= p.target <= cd.MAX_TARGET and all(cd.MIN_NUMBER <= x <= cd.MAX_NUMBER for x in p.numbers)
        assert len(p.steps) == p.difficulty - 1 and cd.solved(p.question, p.steps)
        assert all(cd.step_labels(p.question, p.steps))


def test_several_solutions_per_problem_are_uniform_draws_the_first_the_reference():
    from collections import Counter

    p = next(p for p in cd.load_split("dev") if p.difficulty == 4)
    k = 400
    draws = p.solutions(k)
    assert draws[0] == p.steps and draws == p.solutions(k)  # deterministic; the first is the reference
    assert all(cd.solved(p.question, d) for d in draws)
    # uniform over all solutions: every solution by brute force over moves, each drawn about k/len times
    def all_solutions(state, steps=()):
        if len(state) == 1:
            return [steps] if state[0] == p.target else []
        return [s for step, after in cd.moves(state) for s in all_solutions(after, steps + (step,))]
    every = all_solutions(p.numbers)
    counts = Counter(draws)
    assert set(counts) <= set(every) and len(counts) > 1
    expected = k / len(every)
    assert max(counts.values()) < expected + 5 * expected**0.5 + 3


def test_world_sft_rows_draw_several_solutions_per_problem():
    from problems import arith
    from trainers.data import world_sft_rows

    problems = [p for p in cd.load_split("dev") if p.difficulty <= 4][:6]
    one, three = world_sft_rows(problems), world_sft_rows(problems, workers=2, per_problem=3)
    assert [r["steps"] for r in one] == [list(p.steps) for p in problems]
    assert len(three) == 18 and three[::3] == one
    assert [r["question"] for r in three] == [p.question for p in problems for _ in range(3)]
    with pytest.raises(ValueError, match="one reference solution"):
        world_sft_rows(arith.load_split("dev")[:2], per_problem=2)


def test_splits_are_fixed_disjoint_and_balanced():
    test, dev = cd.load_split("test"), cd.load_split("dev")
    assert len(test) == 800 and len(dev) == 400
    assert [sum(p.difficulty == k for p in test) for k in cd.DIFFICULTIES] == [200] * 4
    assert not {p.question for p in test} & {p.question for p in dev}
    fresh = cd.fresh_problems(300, seed=0)
    assert not {p.question for p in fresh} & {p.question for p in test + dev}
    assert len({p.question for p in test}) == 800  # no repeats
    # pinned: a change to the generator is a new COUNTDOWN_VERSION
    assert (fingerprint(test), fingerprint(dev)) == (cd_fingerprints["test"], cd_fingerprints["dev"])


cd_fingerprints = {"test": "7c772d4f446cc022", "dev": "80c9300d375b113f"}


def test_the_verifier_and_grader_by_hand():
    assert cd.solved(Q, SOLUTION) and cd.verify_steps(Q, SOLUTION).step_legal == (True, True, True)
    assert not cd.solved(Q, SOLUTION, finished=False)  # an unfinished path is not a solution
    # legal moves into a dead end: all legal, not solved
    dead = ["12-8=4|3 4 7", "7-4=3|3 3", "3*3=9|9"]
    v = cd.verify_steps(Q, dead)
    assert v.step_legal == (True, True, True) and not v.solved and v.labels == (False, False, False)
    # claiming the target through bad arithmetic: illegal, not solved
    v = cd.verify_steps(Q, ["12-8=4|3 4 7", "7-4=3|3 3", "3*3=24|24"])
    assert v.step_legal == (True, True, False) and v.first_error == 2 and not v.solved
    # a number not in the multiset, a wrong remaining multiset, a number used twice
    assert cd.verify_steps(Q, ["9-7=2|2 3 12"]).first_error == 0
    assert cd.verify_steps(Q, ["8-7=1|1 3 13"]).first_error == 0
    assert cd.verify_steps(Q, ["12+12=24|3 7 8 24"]).first_error == 0
    # only exact division, only positive results
    assert cd.verify_steps("4:2 3 5", ["5/2=2|2 3"]).first_error == 0
    assert cd.verify_steps("4:2 3 5", ["3-5=-2|2 -2"]).first_error == 0
    assert cd.verify_steps("4:3 5 6", ["6/3=2|2 5"]).first_error is None
    # stopping early (numbers left) or going on after the end
    assert not cd.solved(Q, SOLUTION[:2]) and not cd.solved(Q, SOLUTION + ["24-1=23|23"])
    # every step after an error is illegal too; the remaining multiset may be written in any order
    assert cd.verify_steps(Q, ["9-7=2|2 3 12"] + SOLUTION[1:]).step_legal == (False, False, False)
    assert cd.verify_steps(Q, ["8-7=1|12 3 1", "3-1=2|12 2", "12*2=24|24"]).solved


@pytest.mark.parametrize("junk", ["", "hello", "1+1", "8-7=1", "8-7=1|", "|||", "8 - 7 = 1 | 1 3 12 x", "9" * 300, None, 42])
def test_malformed_steps_and_questions_never_raise(junk):
    v = cd.verify_steps(Q, [junk])
    assert v.step_legal == (False,) and not v.solved and v.labels == (False,)
    assert not cd.solved(junk, SOLUTION) and cd.step_labels(junk, SOLUTION) == [False] * 3
    assert cd.verify_steps(Q, junk).step_legal == () or junk == ""


def test_oracle_labels_on_hand_checked_states():
    assert cd.reachable((1, 3, 12), 24)  # (3 - 1) * 12
    assert not cd.reachable((3, 4, 7), 24)  # checked by hand: no way to 24 with all of 3, 4, 7
    assert cd.reachable((3, 4, 7), 19)  # 3 * 4 + 7
    assert cd.reachable((24,), 24) and not cd.reachable((23,), 24)
    assert cd.values((2, 3)) == {5, 1, 6}  # 3+2, 3-2, 3*2 (3/2 is not exact)
    assert cd.step_labels(Q, ["12-8=4|3 4 7"]) == [False]  # legal, but a dead end
    assert cd.step_labels(Q, ["8-7=1|1 3 12"]) == [True]


def test_reachability_agrees_with_brute_force_over_moves():
    def brute(state, target):
        if len(state) == 1:
            return state[0] == target
        return any(brute(after, target) for _, after in cd.moves(state))

    rng = random.Random(0)
    for _ in range(60):
        state = tuple(sorted(rng.randint(1, 12) for _ in range(rng.randint(1, 4))))
        target = rng.randint(1, 60)
        assert cd.reachable(state, target) == brute(state, target), (state, target)


def test_answer_of_reads_the_last_result():
    assert cd.answer_of(SOLUTION) == 24 and cd.answer_of(["junk"]) is None and cd.answer_of([]) is None


def test_the_world_interface_serves_both_worlds():
    from problems.worlds import WORLDS, get_world

    assert set(WORLDS) == {"arith", "countdown"}
    for name, world in WORLDS.items():
        p = world.load_split("dev")[0]
        assert world.NAME == name and isinstance(world.DIFFICULTY, str) and p.difficulty >= 2
        assert world.solved(p.question, p.steps, True) and all(world.step_labels(p.question, p.steps))
        assert not world.solved(p.question, list(p.steps[:-1]) + ["junk"], True)
        fresh = world.fresh_problems(5, seed=1)
        assert not {q.question for q in fresh} & {q.question for q in world.load_split("test") + world.load_split("dev")}
    with pytest.raises(KeyError, match="unknown world"):
        get_world("chess")


def test_datasets_grade_countdown_on_the_whole_path():
    from engine.types import StepPath
    from problems.datasets import Problem, load_problems

    p = load_problems("countdown-test")[0]
    assert p.world == "countdown" and p.difficulty == 3 and p.grade(None, StepPath(p.question, cd.load_split("test")[0].steps, True))
    p = Problem("x", Q, "24", 4, "countdown")
    assert p.grade("24", StepPath(Q, tuple(SOLUTION), True)) and not p.grade("24", StepPath(Q, tuple(SOLUTION), False))
    assert not p.grade("24", StepPath(Q, ("12-8=4|3 4 7", "7-4=3|3 3", "3*3=24|24"), True))  # the right number through a wrong step
    with pytest.raises(ValueError, match="whole path"):
        p.grade("24")


def test_the_oracle_prm_scores_the_exact_labels():
    from engine.format import StepFormat
    from engine.types import StepPath
    from problems.oracle import OraclePRM

    prm = OraclePRM("countdown", StepFormat())
    out = prm.score([StepPath(Q, tuple(SOLUTION)), StepPath(Q, ("12-8=4|3 4 7", "7-4=3|3 3")), StepPath(Q, ("junk",))])
    assert out.scores == [[1.0, 1.0, 1.0], [0.0, 0.0], [0.0]] and out.cost.prm_tokens_computed == 0


def test_random_paths_are_labelled_by_the_oracle_and_include_false_claims():
    problems = cd.generate_problems(20, seed=3, difficulties=(3, 4))
    rows = cd.random_paths(problems, per_problem=3, seed=0)
    assert len({(r["question"], tuple(r["completions"])) for r in rows}) == len(rows)
    for r in rows:
        assert r["labels"] == cd.step_labels(r["question"], r["completions"])
    claims = [r for r in rows if not cd.verify_steps(r["question"], r["completions"]).step_legal[-1]]
    assert claims and all(r["completions"][-1].endswith(f"|{r['question'].split(':')[0]}") and not r["labels"][-1] for r in claims)
    assert any(all(r["labels"]) for r in rows)  # some random paths solve the problem


def test_sibling_paths_are_balanced_sibling_sets_with_oracle_labels():
    """Per state of the walk (at most 5 numbers): per_state of its legal moves, good ones first up to
    half, each labelled by the oracle; at the last state every wrong claim of the target."""
    problems = cd.generate_problems(30, seed=4, difficulties=(3, 4, 5))
    rows = cd.sibling_paths(problems, per_state=4, seed=1)
    assert rows == cd.sibling_paths(problems, per_state=4, seed=1)  # deterministic in seed
    assert len({(r["question"], tuple(r["completions"])) for r in rows}) == len(rows)
    sets: dict = {}
    for r in rows:
        assert r["labels"] == cd.step_labels(r["question"], r["completions"])
        sets.setdefault((r["question"], tuple(r["completions"][:-1])), []).append(r)
    target_of = {p.question: p.target for p in problems}
    for (question, prefix), siblings in sets.items():
        target = target_of[question]
        state = cd.parse_question(question)[1]
        for step in prefix:
            state = cd.apply_step(state, step)
        assert state is not None  # the walk takes legal moves only
        legal = [r for r in siblings if cd.apply_step(state, r["completions"][-1]) is not None]
        claims = [r for r in siblings if r not in legal]
        good = [r for r in legal if cd.reachable(cd.apply_step(state, r["completions"][-1]), target)]
        options = cd.moves(state)
        n_good = sum(cd.reachable(after, target) for _, after in options)
        kept_good = min(2, n_good)
        assert len(good) == kept_good and len(legal) - len(good) == min(4 - kept_good, len(options) - n_good)
        assert all(r["completions"][-1].endswith(f"={target}|{target}") and not r["labels"][-1] for r in claims)
        assert not claims or len(state) == 2
    assert any(r["labels"][-1] for r in rows) and any(not r["labels"][-1] for r in rows)


def test_corrupt_step_breaks_exactly_one_rule_by_hand():
    state, step = (3, 7, 8, 12), "8-7=1|1 3 12"
    seen = set()
    for seed in range(60):
        bad, claimed = cd.corrupt_step(state, step, random.Random(seed))
        assert cd.apply_step(state, bad) is None  # illegal here
        assert cd.parse_step(bad)[4] == claimed  # and the numbers it claims to leave are its own
        seen.add(bad)
    assert "8-7=2|2 3 12" in seen or "8-7=0|0 3 12" in seen or any(b.startswith("8-7=") and b.endswith("|3 12 " + b[4:b.index("|")]) for b in seen)
    assert "8-7=1|1 12" in seen or "8-7=1|1 3" in seen  # a number dropped
    assert any(b.startswith(("3", "7", "8", "12")) and cd.parse_step(b)[0] == cd.parse_step(b)[2] for b in seen)  # a single number used twice


def test_corrupt_step_writes_inexact_divisions_rounded_or_floored():
    state, step = (6, 14, 24, 5), "6-5=1|1 14 24"
    seen = {cd.corrupt_step(state, step, random.Random(seed))[0] for seed in range(200)}
    inexact = {b for b in seen if cd.parse_step(b)[1] == "/" and cd.combine(*cd.parse_step(b)[:3]) is None}
    assert "24/14=1|1 5 6" in inexact and "24/14=2|2 5 6" in inexact  # floored, rounded
    assert all(cd.apply_step(state, b) is None for b in inexact)


def test_corrupt_step_uses_an_operand_that_is_not_there_a_spent_one_first():
    """The policy's slip `14/7=2|2 3 10` from 3 4 10 14 (the 7 spent at the first step): an absent
    operand in place of one of the step's, the numbers left without the one it replaced."""
    state, step = (3, 4, 10, 14), "14-4=10|3 10 10"
    seen = {cd.corrupt_step(state, step, random.Random(seed), spent=(7, 11, 13))[0] for seed in range(300)}
    absent = {b for b in seen if not {cd.parse_step(b)[0], cd.parse_step(b)[2]} <= set(state)}
    assert "14/7=2|2 3 10" in absent
    for b in absent:
        x, op, y, z, left = cd.parse_step(b)
        assert cd.apply_step(state, b) is None and cd.combine(x, op, y) == z  # right arithmetic, an operand not there
        assert {x, y} - set(state) <= {7, 11, 13} and len(left) == len(state) - 1
    alone = {cd.corrupt_step(state, step, random.Random(seed))[0] for seed in range(300)}  # nothing spent: one off a number there
    assert any(not {cd.parse_step(b)[0], cd.parse_step(b)[2]} <= set(state) for b in alone)
    assert all(cd.apply_step(state, b) is None for b in alone)


def test_slip_kind_names_what_makes_a_step_illegal_by_hand():
    state = (3, 4, 10, 14)
    assert cd.slip_kind(state, "14-4=10|3 10 10") is None
    assert cd.slip_kind(state, "14/7=2|2 3 10") == "absent"
    assert cd.slip_kind(state, "3*3=9|4 9 10 14") == "twice"
    assert cd.slip_kind(state, "14/4=3|3 3 10") == "inexact"
    assert cd.slip_kind(state, "4-10=6|3 6 14") == "out_of_range"
    assert cd.slip_kind(state, "10*4=41|3 14 41") == "result"
    assert cd.slip_kind(state, "10*4=40|40 14") == "left"
    assert cd.slip_kind(state, "ten times four") == "malformed"


def test_legality_labels_by_hand():
    """Steps leaving a count of numbers in `left` are labelled by legality alone; the rest keep the oracle's labels."""
    dead = "100:1 2 3 4"  # at most (1+2)*3*4 = 36: every state is a dead end
    steps = ["1+2=3|3 3 4", "3*4=12|3 12", "12*3=36|36"]
    oracle = cd.step_labels(dead, steps)
    assert oracle == [False, False, False]
    assert cd.legality_labels(dead, steps, oracle, {3}) == [True, False, False]
    assert cd.legality_labels(dead, steps, oracle, {2, 3}) == [True, True, False]
    bad = ["1+2=4|3 4 4", "3*4=12|3 12"]  # wrong result: illegal from the first step on
    assert cd.legality_labels(dead, bad, cd.step_labels(dead, bad), {2, 3}) == [False, False]
    good = ["1+2=3|3 3 4", "3+3=6|4 6", "6+4=10|10"]
    assert cd.legality_labels("10:1 2 3 4", good, cd.step_labels("10:1 2 3 4", good), {2, 3}) == [True, True, True]
    assert cd.legality_labels(dead, ["garbage"], [False], {3}) == [False]


def test_corrupted_paths_have_one_slip_and_negative_labels_from_it_on():
    problems = cd.fresh_problems(30, seed=4)
    rows = cd.corrupted_paths(problems, 2, seed=3)
    assert rows == cd.corrupted_paths(problems, 2, seed=3) and len(rows) > 40
    for r in rows:
        verdict = cd.verify_steps(r["question"], r["completions"])
        assert r["labels"] == list(verdict.labels) and verdict.first_error is not None
        k = verdict.first_error
        assert not any(r["labels"][k:]) and all(verdict.step_legal[:k])  # legal up to the slip, Negative from it on
        state = cd.parse_question(r["question"])[1]
        for step in r["completions"][:k]:
            state = cd.apply_step(state, step)
        claimed = cd.parse_step(r["completions"][k])[4]
        for step in r["completions"][k + 1:-1]:  # after the slip: legal moves from the numbers it claimed
            claimed = cd.apply_step(claimed, step)
            assert claimed is not None
    assert any(cd.parse_step(r["completions"][-1])[3] == cd.parse_question(r["question"])[0] and r["labels"].index(False) < len(r["labels"]) - 1
               for r in rows)  # some go on to claim the target


def test_inexact_division_paths_pair_a_division_that_is_not_exact_with_an_exact_one():
    rows = cd.inexact_division_paths(cd.fresh_problems(30, seed=4), 2, seed=3)
    assert rows == cd.inexact_division_paths(cd.fresh_problems(30, seed=4), 2, seed=3) and len(rows) > 20
    slips, twins = 0, 0
    for r in rows:
        verdict = cd.verify_steps(r["question"], r["completions"])
        assert r["labels"] == list(verdict.labels)
        k = verdict.first_error
        if k is None:  # a twin: legal throughout, and one of its steps divides exactly by more than 1
            twins += 1
            assert any(cd.parse_step(st)[1] == "/" and cd.parse_step(st)[2] > 1 for st in r["completions"])
            continue
        slips += 1
        assert not any(r["labels"][k:]) and all(verdict.step_legal[:k])
        a, op, b, c, _ = cd.parse_step(r["completions"][k])
        assert op == "/" and a % b and c in (a // b, int(a / b + 0.5))  # floored or rounded
        twin = [t for t in rows if t["question"] == r["question"] and t["completions"][:k] == r["completions"][:k]
                and cd.verify_steps(t["question"], t["completions"]).first_error is None and cd.parse_step(t["completions"][k])[1] == "/"]
        state = cd.parse_question(r["question"])[1]
        for st in r["completions"][:k]:
            state = cd.apply_step(state, st)
        has_exact = any(cd.parse_step(st)[1] == "/" and cd.parse_step(st)[2] > 1 for st, _ in cd.moves(state))
        assert bool(twin) == has_exact
    assert slips > 20 and twins > 5


def test_slip_pairs_end_at_a_slip_from_five_or_more_numbers_beside_its_legal_twin():
    problems = cd.fresh_problems(40, seed=4)
    rows = cd.slip_pairs(problems, 2, seed=3)
    assert rows == cd.slip_pairs(problems, 2, seed=3) and len(rows) > 30
    questions = {p.question for p in problems if len(p.numbers) >= 5}
    slips = [r for r in rows if cd.verify_steps(r["question"], r["completions"]).first_error is not None]
    assert len(slips) > 15 and {r["question"] for r in rows} <= questions  # three or four numbers give none
    for r in rows:
        assert r["labels"] == cd.step_labels(r["question"], r["completions"])
    for r in slips:
        *prefix, slip = r["completions"]
        assert cd.verify_steps(r["question"], r["completions"]).first_error == len(prefix)  # the last step is the slip
        state = cd.states_after(r["question"], prefix)[-1] if prefix else cd.parse_question(r["question"])[1]
        assert len(state) >= 5 and cd.slip_kind(state, slip) is not None
        twins = [t for t in rows if t["question"] == r["question"] and t["completions"][:-1] == prefix
                 and len(t["completions"]) == len(r["completions"]) and cd.apply_step(state, t["completions"][-1]) is not None]
        assert twins  # the same steps up to there, then a legal one
    assert len({cd.slip_kind(cd.states_after(r["question"], r["completions"][:-1])[-1] if len(r["completions"]) > 1
                             else cd.parse_question(r["question"])[1], r["completions"][-1]) for r in slips}) >= 4  # of several kinds


def test_slipped_walks_slip_only_where_min_before_numbers_are_left():
    problems = cd.fresh_problems(20, seed=8)
    late = [(len(walk[k][0]), len(p.numbers)) for p, walk, k, _ in cd.slipped_walks(problems, 2, random.Random(1), min_before=5)]
    assert late and all(before >= 5 and n >= 5 for before, n in late)
    anywhere = {len(walk[k][0]) for _, walk, k, _ in cd.slipped_walks(problems, 2, random.Random(1))}
    assert {2, 3, 4} <= anywhere


def test_legality_steps_pose_each_state_of_a_walk_with_its_own_step_and_a_near_miss():
    problems = cd.fresh_problems(30, seed=2)
    rows = cd.legality_steps(problems, 1, seed=5)
    assert rows == cd.legality_steps(problems, 1, seed=5)
    targets = {p.target for p in problems}
    kinds = set()
    for r in rows:
        target, state = cd.parse_question(r["question"])
        [step] = r["completions"]
        assert target in targets and r["labels"] == [cd.apply_step(state, step) is not None]  # legality alone, dead ends included
        kinds.add(cd.slip_kind(state, step))
    legal = sum(r["labels"][0] for r in rows)
    assert legal > 40 and len(rows) - legal > 40 and len(kinds) >= 6  # None (legal) and five kinds of slip at least
    assert any(len(cd.parse_question(r["question"])[1]) == 2 for r in rows) and any(len(cd.parse_question(r["question"])[1]) == 6 for r in rows)


def test_claimed_walks_pair_a_solved_walk_with_a_near_miss_claim():
    problems = cd.fresh_problems(40, seed=6)
    rows = cd.claimed_walks(problems, 1, seed=2)
    assert rows == cd.claimed_walks(problems, 1, seed=2)
    solved = [r for r in rows if all(r["labels"])]
    claims = [r for r in rows if not r["labels"][-1]]
    assert len(solved) + len(claims) == len(rows) and len(solved) >= 35 and len(claims) >= 30
    by_numbers = {cd.parse_question(r["question"])[1]: r for r in solved}
    for r in rows:
        target, numbers = cd.parse_question(r["question"])
        assert r["labels"] == cd.step_labels(r["question"], r["completions"]) and len(r["completions"]) == len(numbers) - 1
        assert cd.MIN_TARGET <= target <= cd.MAX_TARGET and numbers in {p.numbers for p in problems}
    for r in claims:  # the same walk as its solved twin, the last step claiming a near-miss target through the same operation
        target, numbers = cd.parse_question(r["question"])
        twin = by_numbers[numbers]["completions"]
        assert r["completions"][:-1] == twin[:-1] and cd.parse_step(r["completions"][-1])[:3] == cd.parse_step(twin[-1])[:3]
        assert cd.parse_step(r["completions"][-1])[3:] == (target, (target,)) != cd.parse_step(twin[-1])[3:]
        assert cd.solved(cd.question_text(cd.parse_step(twin[-1])[3], numbers), twin) and not cd.solved(r["question"], r["completions"])
    # by hand: from 3 4 only 4*3=12 ends in the target range (7 and 1 do not); its twin claims a near miss of 12
    for seed in range(5):
        good, bad = cd.claimed_walks([cd.CountdownProblem("x", "7:3 4", 7, (3, 4))], 1, seed=seed)
        assert good == {"question": "12:3 4", "completions": ["4*3=12|12"], "labels": [True]}
        w = cd.parse_question(bad["question"])[0]
        assert w in {10, 11, 13, 14, 15, 16, 17, 22} and bad["completions"] == [f"4*3={w}|{w}"] and bad["labels"] == [False]
    assert cd.claimed_walks([cd.CountdownProblem("x", "2:1 1", 2, (1, 1))], 1, seed=0) == []  # 1+1=2, 1*1=1: below the range, no pair


def test_evals_run_on_countdown_with_the_shipped_policy_and_the_oracle_prm(tmp_path):
    """The countdown recipe end to end: beam search guided by the exact labels, graded on whole paths."""
    import subprocess
    import sys

    out = tmp_path / "run"
    run = subprocess.run([sys.executable, "-m", "evals.run", "--recipe", "recipes/countdown.yaml", "--prm", "oracle", "--strategy", "beam",
                          "--n", "4", "--limit", "8", "--output", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and {r["difficulty"] for r in rows} == {3, 4, 5, 6}
    for r in rows:  # the recorded verdict is the whole-path grader's, and a guided path never takes a dead-end step
        assert r["correct"] == (r["finished"] and cd.solved(r["question"], r["steps"]))
        assert all(r["scores"]) or not r["correct"]
    assert json.loads((out / "summary.json").read_text())["difficulty_unit"] == "numbers"
    bad = subprocess.run([sys.executable, "-m", "evals.run", "--prm", "oracle", "--dataset", "arith-test", "--limit", "2", "--strategy", "beam",
                          "--output", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode == 0  # arith is an embedded world too: its oracle is its exact verifier


def test_every_strategy_end_to_end_on_the_countdown_recipe_with_its_learned_prm(tmp_path):
    """The shipped countdown policy and PRM (recipes/countdown.yaml) under every strategy, one engine pair."""
    import subprocess
    import sys

    from strategies import STRATEGIES

    out = tmp_path / "cmp"
    run = subprocess.run([sys.executable, "-m", "evals.run", "--recipe", "recipes/countdown.yaml", "--compare", "--strategies", ",".join(STRATEGIES),
                          "--budgets", "4", "--limit", "8", "--output", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    solved = 0
    for name in STRATEGIES:
        n = 1 if name in ("greedy", "greedy_retry") else 4
        rows = [json.loads(line) for line in (out / f"{name}-n{n}" / "results.jsonl").read_text().splitlines()]
        assert len(rows) == 8 and {r["difficulty"] for r in rows} == {3, 4, 5, 6}, name
        for r in rows:  # graded on the whole path; the learned PRM's scores are probabilities
            assert r["correct"] == (r["finished"] and cd.solved(r["question"], r["steps"])), name
            assert all(0.0 <= s <= 1.0 for s in r["scores"]), name
        solved += sum(r["correct"] for r in rows)
    assert solved > 0
    assert "beam" in (out / "compare.md").read_text()
    # every run starts with cold caches: a strategy run alone costs what it cost after the others
    alone = subprocess.run([sys.executable, "-m", "evals.run", "--recipe", "recipes/countdown.yaml", "--strategy", "mcts", "--n", "4",
                            "--limit", "8", "--output", str(tmp_path / "alone")], capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr[-2000:]
    cost = lambda path: [(r["id"], r["cost"]["prm_tokens_computed"], r["cost"]["cached_tokens"])  # noqa: E731
                         for r in map(json.loads, path.read_text().splitlines())]
    assert cost(tmp_path / "alone" / "results.jsonl") == cost(out / "mcts-n4" / "results.jsonl")


def test_prm_eval_of_a_run_grades_whole_paths_and_labels_every_distinct_candidate(tmp_path):
    """evals.prm_eval --run on countdown: within-problem AUROC over the graded candidates, and step
    metrics over each problem's distinct candidates against the exact labels."""

    from evals.prm_eval import run_auroc
    from problems.datasets import load_problems

    problem = load_problems("countdown-test")[0]
    good = list(cd.load_split("test")[0].steps)
    bad = good[:-1] + [good[-1].split("=")[0] + "=1|1"]  # the last step's arithmetic is wrong
    cands = [{"steps": good, "finished": True, "scores": [0.9] * len(good)},
             {"steps": bad, "finished": True, "scores": [0.9] * (len(bad) - 1) + [0.2]},
             {"steps": bad, "finished": True, "scores": [0.9] * (len(bad) - 1) + [0.2]}]  # a duplicate: one path for the step metrics
    (tmp_path / "results.jsonl").write_text(json.dumps({"id": problem.id, "candidates": cands}) + "\n")
    report = run_auroc(str(tmp_path), "countdown-test")
    assert report["within_problem_auroc"] == 1.0 and report["problems_with_both"] == 1
    steps = report["steps_of_distinct_candidates"]
    assert steps["paths"] == 2 and steps["step_accuracy"] == 1.0 and steps["processbench_f1"] == 1.0
    # by what is left: the shared prefix once, the two last steps (one right, one wrong) at 1 number left
    n = problem.difficulty
    by_left = report["step_accuracy_by_left"]
    assert list(by_left) == list(range(n - 1, 0, -1)) and by_left[1] == {"accuracy": 1.0, "positive_share": 0.5, "steps": 2}
    assert all(by_left[k] == {"accuracy": 1.0, "positive_share": 1.0, "steps": 1} for k in range(2, n))


def test_prm_eval_rescores_a_runs_candidates_and_picks_as_best_of_n_would(tmp_path):
    """prm_eval --run --rescore: each distinct candidate scored once by the new scorer, whose scores
    (not the run's) make the AUROC and pick best_of_n's answer by the run's selection; a run a PRM steered is refused."""
    from engine.types import Scores
    from evals.prm_eval import main, run_auroc
    from problems.datasets import load_problems

    problem = load_problems("countdown-test")[0]
    good = list(cd.load_split("test")[0].steps)
    bad = good[:-1] + [good[-1].split("=")[0] + "=1|1"]
    cands = [{"steps": bad, "finished": True, "scores": [0.9] * len(bad)},  # the run's scores put the wrong path first
             {"steps": good, "finished": True, "scores": [0.1] * len(good)},
             {"steps": bad, "finished": True, "scores": [0.9] * len(bad)}]
    (tmp_path / "results.jsonl").write_text(json.dumps({"id": problem.id, "candidates": cands}) + "\n")

    class Oracle:  # 0.8 on the right path's steps, 0.3 on the wrong one's; records what it was asked
        calls: list = []

        def score(self, paths):
            self.calls.append(len(paths))
            return Scores([[0.8 if p.steps == tuple(good) else 0.3] * len(p.steps) for p in paths], None)

    assert run_auroc(str(tmp_path), "countdown-test")["within_problem_auroc"] == 0.0  # the run's own scores
    for selection in ("prm", "weighted"):  # weighted: two wrong copies vote 2 x 0.3^k for "1", the right path 0.8^k for the target
        report = run_auroc(str(tmp_path), "countdown-test", "prod", Oracle(), selection, "last_number")
        assert report["within_problem_auroc"] == 1.0 and report["best_of_n"]["selection"] == selection
    assert Oracle.calls == [2, 2]  # the duplicate scored once
    assert report["best_of_n"]["accuracy"] == 1.0 and report["best_of_n"]["aggregation"] == "prod"
    assert report["slips_passed"] == {"result": {"passed": 0.0, "slips": 1}, "2 numbers before": {"passed": 0.0, "slips": 1},
                                      "2 numbers before, result": {"passed": 0.0, "slips": 1}}  # "=1|1": scored 0.3
    (tmp_path / "summary.json").write_text(json.dumps({"strategy": "dfs"}))
    with pytest.raises(SystemExit, match="no PRM steered"):
        main(["--run", str(tmp_path), "--dataset", "countdown-test", "--rescore"])


def test_accuracy_by_left_by_hand():
    from problems.metrics import accuracy_by_left

    paths = [("q", ["a", "b", "c"], [0.9, 0.3, 0.8], [True, False, False], 4),  # stops at its first wrong step (b)
             ("q", ["a", "x"], [0.9, 0.7], [True, True], 4),  # "a" again: counted once
             ("r", ["a"], [0.4], [True], 2)]
    assert accuracy_by_left(paths) == {3: {"accuracy": 1.0, "positive_share": 1.0, "steps": 1},
                                       2: {"accuracy": 1.0, "positive_share": 0.5, "steps": 2},
                                       1: {"accuracy": 0.0, "positive_share": 1.0, "steps": 1}}


def test_sibling_metrics_by_hand():
    from problems.metrics import sibling_metrics

    row = lambda q, steps, last: {"question": q, "completions": steps, "labels": [True] * (len(steps) - 1) + [last]}  # noqa: E731
    rows = [row("q", ["a"], True), row("q", ["b"], False), row("q", ["c"], False),  # one set, 3 left after its step
            row("q", ["a", "x"], True), row("q", ["a", "y"], False),  # 2 left: two sets of two
            row("r", ["z", "u"], False), row("r", ["z", "v"], True)]
    scores = [[0.9], [0.6], [0.2], [0.9, 0.4], [0.9, 0.45], [0.5, 0.8], [0.5, 0.7]]
    report = sibling_metrics(rows, scores, lambda q: 4)
    # left 3: right on a (0.9 yes), wrong on b (0.6 says yes), right on c; a outranks both: AUROC 1
    assert report[3] == {"accuracy": 2 / 3, "positive_share": 1 / 3, "sibling_auroc": 1.0, "steps": 3}
    # left 2: x (0.4, no: wrong), y (0.45 no: right), u (0.8 yes: wrong), v (0.7 yes: right); both sets ranked wrong
    assert report[2] == {"accuracy": 0.5, "positive_share": 0.5, "sibling_auroc": 0.0, "steps": 4}
    assert list(report) == [3, 2]


def test_prm_eval_siblings_scores_held_out_sibling_sets_of_dev_problems():
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "evals.prm_eval", "--prm", str(MODELS_DIR / "countdown-prm"), "--siblings", "4"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    rows = cd.sibling_paths(cd.load_split("dev")[:4], per_state=8, seed=0)
    by_left = report["siblings_by_left"]
    assert report["paths"] == len(rows) and sum(v["steps"] for v in by_left.values()) == len(rows)
    assert set(by_left) <= {"1", "2", "3", "4"} and all(0 <= v["accuracy"] <= 1 for v in by_left.values())


def test_slips_passed_by_hand():
    from evals.prm_eval import slips_passed

    q = "24:3 4 10 14"
    rows = [{"question": q, "completions": ["14-4=10|3 10 10", "10/3=3|3 10"]},   # an inexact division at 3 numbers
            {"question": q, "completions": ["14/7=2|2 3 10"]},                    # an absent operand at 4
            {"question": q, "completions": ["14/4=3|3 3 10", "3*3=9|9 10"]},      # inexact at 4 (the step after does not count)
            {"question": q, "completions": ["14-4=10|3 10 10"]},                  # no slip: left out
            {"question": q, "completions": ["14/7=2|2 3 10", "3*2=6|6 10"]}]      # the same slip again: counted once
    scores = [[0.9, 0.7], [0.2], [0.4, 0.9], [0.9], [0.2, 0.1]]
    report = slips_passed(rows, scores, threshold=0.5)
    assert report == {"3 numbers before": {"passed": 1.0, "slips": 1}, "4 numbers before": {"passed": 0.0, "slips": 2},
                      "absent": {"passed": 0.0, "slips": 1}, "inexact": {"passed": 0.5, "slips": 2},
                      "3 numbers before, inexact": {"passed": 1.0, "slips": 1}, "4 numbers before, absent": {"passed": 0.0, "slips": 1},
                      "4 numbers before, inexact": {"passed": 0.0, "slips": 1}}


def test_prm_eval_slips_scores_held_out_corrupted_walks_and_division_pairs_of_dev_problems():
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "evals.prm_eval", "--prm", str(MODELS_DIR / "countdown-prm"), "--slips", "4"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout)
    dev = cd.load_split("dev")[:4]
    rows = cd.corrupted_paths(dev, 4, seed=0) + cd.inexact_division_paths(dev, 2, seed=0)
    slips = sum(cd.verify_steps(r["question"], r["completions"]).first_error is not None for r in rows)
    kinds = {k: v for k, v in report["slips_passed"].items() if "numbers before" not in k}
    assert report["paths"] == len(rows) and sum(v["slips"] for v in kinds.values()) == slips > 0
    assert "inexact" in kinds and all(0 <= v["passed"] <= 1 for v in report["slips_passed"].values())


def test_reachability_probe_states_labels_and_auroc():
    """evals.reachability_probe: four-number states from legal walks, labelled by the oracle for every target; a rank AUROC."""
    import torch

    from evals.reachability_probe import auroc
    from problems.countdown_value import TARGETS
    from trainers.countdown_value import labelled

    for seed in range(20):
        state, labels = labelled(seed)
        assert len(state) == 4 and list(state) == sorted(state)
        assert labels == [cd.reachable(state, t) for t in TARGETS]
    assert labelled(3) == labelled(3)
    assert auroc(torch.tensor([.1, .4, .35, .8]), torch.tensor([0., 0., 1., 1.])) == 0.75  # 3 of 4 pairs ordered right


def test_reachability_probe_walks_to_any_count_and_reads_the_pairs_a_search_met(tmp_path):
    from evals.reachability_probe import search_pairs
    from trainers.countdown_value import labelled, walk_state

    assert walk_state(5) == labelled(5)[0] and all(len(walk_state(k, left=3)) == 3 for k in range(10))
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"question": "24:2 3 4 8", "candidates": [
        {"steps": ["8*3=24|2 4 24", "4/2=2|2 24"], "scores": [0.9, 0.3]},  # 3 numbers left, then 2
        {"steps": ["3-2=1|1 4 8", "1*1=5|5 8"], "scores": [0.6, 0.2]},       # 3 left, then what an illegal step claims
        {"steps": ["8*3=24|2 4 24"], "scores": [0.8]}]},                       # the same pair again: counted once, first score kept
        {"question": "500:2 3 4 9", "candidates": [{"steps": ["9*4=36|2 3 36"], "scores": [0.5]}]}]  # a target out of range: skipped
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    met = search_pairs([str(run)], left=3)
    assert met == [(24, (1, 4, 8), cd.reachable((1, 4, 8), 24), 0.6), (24, (2, 4, 24), cd.reachable((2, 4, 24), 24), 0.9)]
    assert search_pairs([str(run)], left=2) == [(24, (2, 24), False, 0.3), (24, (5, 8), False, None)]  # no PRM score after an illegal step


@pytest.mark.parametrize("held_out", ["states", "draws"])
def test_reachability_probe_runs_end_to_end(held_out, capsys):
    from evals.reachability_probe import main

    main(["--states", "300", "--minutes", "0.005", "--device", "cpu", "--procs", "1", "--width", "16", "--layers", "1", "--batch", "64",
          "--held_out", held_out])
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    assert report["held_out"] == held_out and report["steps"] >= 1 and report["held_out_states"] > 0
    for name in ("held_out_all_targets", "held_out_balanced"):
        assert 0.0 <= report[name]["accuracy"] <= 1.0 and 0.5 <= report[name]["majority_class"] <= 1.0


def test_reachability_probe_per_state_scores_a_runs_pairs(tmp_path, capsys):
    """--per_state (a logit per target) with three numbers left, scored on the pairs a run met, saved."""
    import torch

    from evals.reachability_probe import main
    from problems.countdown_value import TARGETS, load_tables

    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text(json.dumps({"question": "24:2 3 4 8", "candidates": [{"steps": ["8*3=24|2 4 24"], "scores": [0.9]},
                                                                                            {"steps": ["3-2=1|1 4 8"], "scores": [0.1]}]}) + "\n")
    main(["--per_state", "--numbers_left", "3", "--states", "300", "--minutes", "0.005", "--device", "cpu", "--procs", "1", "--width", "8",
          "--hidden", "16", "--batch", "32", "--search_runs", str(run), "--save", str(tmp_path / "table")])
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    assert report["per_state"] and report["numbers_left"] == 3 and report["steps"] >= 1
    assert report["search_pairs"]["all"]["pairs"] == report["search_pairs"]["run_prm"]["pairs"] == 2
    assert report["search_pairs"]["state_in_training"]["pairs"] + report["search_pairs"]["state_not_in_training"]["pairs"] == 2
    [table] = load_tables(tmp_path / "table")
    assert table.left == 3 and table(torch.tensor([[2, 4, 24]])).shape == (1, len(TARGETS))


def test_value_capped_prm_caps_only_the_steps_its_tables_read(tmp_path):
    """problems.countdown_value: min(PRM, table) on steps leaving a table's count of numbers, the PRM's score elsewhere;
    the tables survive save and load (float16 on disk)."""
    import torch

    from engine.types import Cost, Scores, StepPath
    from problems.countdown_value import TARGETS, StateTable, ValueCappedPRM, load_tables, save_tables

    class FakePRM:
        fmt = None

        def score(self, paths):
            return Scores([[0.9] * len(p.steps) for p in paths], Cost(prm_calls=1))

    table = StateTable(4, 8, 3)
    with torch.no_grad():
        for p in table.parameters():
            p.zero_()
        table.mlp[-1].bias[24 - TARGETS[0]] = -2.0  # P(reachable) = sigmoid(-2) for target 24, 0.5 for any other
    save_tables([table], tmp_path / "value")
    capped = ValueCappedPRM(FakePRM(), load_tables(tmp_path / "value"))
    paths = [StepPath("24:2 3 4 8", ("8*3=24|2 4 24", "4/2=2|2 24")), StepPath("30:2 3 4 8", ("3-2=1|1 4 8",)), StepPath("24:2 3 4", ("4-3=1|1 2",))]
    got = capped.score(paths).scores
    low = torch.sigmoid(torch.tensor(-2.0)).item()
    assert got[0][0] == pytest.approx(low) and got[0][1] == 0.9  # 3 left: capped; 2 left: the PRM's
    assert got[1] == [0.5] and got[2] == [0.9]


def test_posed_steps_pose_each_step_from_the_numbers_the_step_before_claims():
    from engine.types import StepPath
    from problems.countdown_value import posed_steps

    path = StepPath("17:7 10 10 11 13 14", ("11-7=4|4 10 10 13 14", "13-10=3|3 4 10 14", "14/7=2|2 3 10"))
    assert posed_steps(path) == [StepPath("17:7 10 10 11 13 14", ("11-7=4|4 10 10 13 14",)),
                                 StepPath("17:4 10 10 13 14", ("13-10=3|3 4 10 14",)),
                                 StepPath("17:3 4 10 14", ("14/7=2|2 3 10",))]  # the absent 7 is plain here
    assert posed_steps(StepPath("17:3 4 10", ("ten", "4-3=1|1 10"))) == [StepPath("17:3 4 10", ("ten",)), None]
    assert posed_steps(StepPath("what is 2+2", ("4",))) == [None]


def test_legality_capped_prm_takes_the_minimum_scoring_each_posed_step_once():
    """problems.countdown_value.LegalityCappedPRM: min(PRM, legality model on the posed step), each posed step scored once a call."""
    from engine.types import Cost, Scores, StepPath
    from problems.countdown_value import LegalityCappedPRM

    class FakePRM:
        fmt = None

        def __init__(self, score):
            self.asked, self.rule = [], score

        def score(self, paths):
            self.asked.append(list(paths))
            return Scores([[self.rule(p, k) for k in range(len(p.steps))] for p in paths], Cost(prm_calls=1))

    prm = FakePRM(lambda p, k: 0.9)
    judge = FakePRM(lambda p, k: 0.1 if "7" in p.steps[0].split("=")[0] else 0.95)  # "illegal" when an operand has a 7
    capped = LegalityCappedPRM(prm, judge)
    paths = [StepPath("17:3 4 10 14", ("14-4=10|3 10 10", "10/7=1|1 3")), StepPath("17:3 4 10 14", ("14-4=10|3 10 10",))]
    out = capped.score(paths)
    assert out.scores == [[0.9, 0.1], [0.9]] and out.cost.prm_calls == 2
    assert judge.asked == [[StepPath("17:3 4 10 14", ("14-4=10|3 10 10",)), StepPath("17:3 10 10", ("10/7=1|1 3",))]]  # the shared one once


def test_value_model_directory_errors(tmp_path):
    from engine.models import ModelDirError
    from problems.countdown_value import load_tables

    with pytest.raises(ModelDirError, match="no config.json"):
        load_tables(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"tables": [{"left": 3, "width": 4, "hidden": 8, "file": "gone.safetensors"}]}))
    with pytest.raises(ModelDirError, match="not a countdown state-table model"):
        load_tables(tmp_path)


def test_countdown_value_trainer_is_seeded_and_writes_a_loadable_model(tmp_path):
    """trainers.countdown_value: both tables trained for a fixed count of steps, the same weights from the same seed."""
    import torch

    from problems.countdown_value import load_tables
    from trainers.countdown_value import main

    args = ["--walks", "300", "--numbers_left", "4,3", "--hidden", "16,8", "--steps", "3,2", "--width", "4", "--batch", "16",
            "--procs", "1", "--device", "cpu"]
    main(args + ["--output_dir", str(tmp_path / "a")])
    main(args + ["--output_dir", str(tmp_path / "b"), "--cache_dir", str(tmp_path / "cache")])  # labels the walks and keeps them
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["walks-left3-300.npz", "walks-left4-300.npz"]
    main(args + ["--output_dir", str(tmp_path / "c"), "--cache_dir", str(tmp_path / "cache")])  # reads them back: the same rows
    a, b = load_tables(tmp_path / "a"), load_tables(tmp_path / "b")
    assert all(torch.equal(x, y) for ta, tb in zip(b, load_tables(tmp_path / "c")) for x, y in zip(ta.state_dict().values(), tb.state_dict().values()))
    assert [t.left for t in a] == [4, 3] and [t.hidden for t in a] == [16, 8]
    assert all(torch.equal(x, y) for ta, tb in zip(a, b) for x, y in zip(ta.state_dict().values(), tb.state_dict().values()))
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["left4"]["steps"] == 3 and report["left3"]["held_out_states"]["pairs"] > 0


def test_the_countdown_recipe_caps_its_prm_with_the_shipped_value_model():
    """recipes/countdown.yaml: the token PRM capped by models/countdown-value and models/countdown-legality; "none" leaves either
    out; only countdown takes them."""
    from engine.types import StepPath
    from problems.countdown_value import ValueCappedPRM
    from recipes import RecipeError, load_recipe

    recipe = load_recipe("recipes/countdown.yaml")
    capped, alone = recipe.prm(backend="hf"), recipe.prm(backend="hf", value="none")
    assert isinstance(capped, ValueCappedPRM) and not isinstance(alone, ValueCappedPRM)
    assert sorted(capped.tables) == [3, 4]
    # a legal first step from a 5-number question to a dead end (nothing from 1 1 1 2 makes 97), then a legal step from a good one
    paths = [StepPath("97:1 1 1 2 2", ("2-1=1|1 1 1 2",)), StepPath("24:1 2 3 4 5", ("5-1=4|2 3 4 4", "4*3=12|2 4 12"))]
    assert not cd.reachable((1, 1, 1, 2), 97) and cd.reachable((2, 3, 4, 4), 24) and cd.reachable((2, 4, 12), 24)
    got, plain = capped.score(paths).scores, alone.score(paths).scores
    assert all(g <= p for gs, ps in zip(got, plain) for g, p in zip(gs, ps))
    assert got[0][0] < 0.5 and min(got[1]) > 0.5
    assert plain[0][0] > 0.5  # the shipped PRM judges legality alone where a table reads the state: the legal dead end passes it
    # the shipped legality model caps it too; "none" leaves it out; a token PRM of one-step legality is served like
    # the PRM (any token PRM in its format serves here: the PRM itself)
    from problems.countdown_legality import LegalityModel
    from problems.countdown_value import LegalityCappedPRM

    assert isinstance(capped.prm, LegalityCappedPRM) and isinstance(capped.prm.legality, LegalityModel)
    unjudged = recipe.prm(backend="hf", legality="none")
    assert isinstance(unjudged, ValueCappedPRM) and not isinstance(unjudged.prm, LegalityCappedPRM)
    assert all(g <= u for gs, us in zip(got, unjudged.score(paths).scores) for g, u in zip(gs, us))
    judged = recipe.prm(backend="hf", legality=str(MODELS_DIR / "countdown-prm"))
    assert isinstance(judged, ValueCappedPRM) and isinstance(judged.prm.legality, type(unjudged.prm))
    assert all(j <= u for js, us in zip(judged.score(paths).scores, unjudged.score(paths).scores) for j, u in zip(js, us))
    with pytest.raises(RecipeError, match="reads countdown states"):
        load_recipe("recipes/arith.yaml").prm(backend="hf", value="models/countdown-value")
    with pytest.raises(RecipeError, match="legality model reads countdown steps"):
        load_recipe("recipes/arith.yaml").prm(backend="hf", legality="models/countdown-policy")
    with pytest.raises(RecipeError, match="has no config.json"):
        recipe.prm(backend="hf", legality="no/such/dir")
    import subprocess
    import sys

    for extra, message in ((["--value", "no/such/dir"], "has no config.json"), (["--prm", "oracle", "--value", "models/countdown-value"], "drop one")):
        bad = subprocess.run([sys.executable, "-m", "evals.run", "--recipe", "recipes/countdown.yaml", "--strategy", "beam", "--limit", "1", *extra],
                             capture_output=True, text=True)
        assert bad.returncode != 0 and message in bad.stderr, bad.stderr[-500:]
