"""Tests for the embedded arithmetic world (problems/arith.py)."""

import hashlib
import random
import re

import pytest

from problems import arith
from problems.arith import (
    ArithProblem,
    evaluate,
    generate_problems,
    grade,
    load_split,
    parse_answer,
    reference_steps,
    verify_steps,
)

# Pinned fingerprints of the held-out questions. If these fail, the splits
# changed: that is a new ARITH_VERSION, not a test to update casually.
TEST_SHA256 = "c464e083f944718c3412a9f0ac782b7198a0bcf51bb52eb3e0e0f54a6c47ac66"
DEV_SHA256 = "979a21315f56f989548f43f48c35fff8614455557f39acd8a6546f0cd5e92b62"


def n_ops(expr: str) -> int:
    """Number of binary operators in a state (a leading '-' is a sign)."""
    return sum(c in "+-*" for c in expr.lstrip("-"))

# -----------------------------------------------------------------------------
# generator

def test_generator_is_deterministic_in_seed():
    a = generate_problems(200, seed=7)
    assert a == generate_problems(200, seed=7)
    assert [p.question for p in a] != [p.question for p in generate_problems(200, seed=8)]
    assert a[0].id == "gen-7-00000" and a[199].id == "gen-7-00199"


def test_generator_respects_operand_counts_values_and_operators():
    probs = generate_problems(2000, seed=1, n_operands=(3, 5), min_value=5, max_value=9, operators="+*")
    assert {p.n_operands for p in probs} == {3, 4, 5}
    for p in probs:
        numbers = [int(x) for x in re.split(r"[-+*]", p.question)]
        assert len(numbers) == p.n_operands
        assert all(5 <= x <= 9 for x in numbers)
        assert set(re.sub(r"[0-9]", "", p.question)) <= {"+", "*"}
        assert p.answer == eval(p.question)
        assert p.steps[-1] == str(p.answer)
    assert {p.n_operands for p in generate_problems(50, seed=1, n_operands=6)} == {6}


@pytest.mark.parametrize("kwargs", [
    dict(n=-1),
    dict(n_operands=1),
    dict(n_operands=(3, 2)),
    dict(n_operands=(1, 4)),
    dict(n_operands="3"),
    dict(min_value=-1),
    dict(min_value=10, max_value=5),
    dict(operators=""),
    dict(operators="+/"),
    dict(n_operands=60, max_value=10**6),  # values would overflow MAX_DIGITS
])
def test_generator_rejects_bad_arguments(kwargs):
    args = dict(n=5, seed=0) | kwargs
    with pytest.raises(ValueError):
        generate_problems(**args)

# -----------------------------------------------------------------------------
# evaluation and reference solutions

def test_evaluate_matches_python_eval():
    for k in range(2, 8):
        for p in generate_problems(500, seed=k, n_operands=k, min_value=0, max_value=50):
            assert evaluate(p.question) == eval(p.question)
            # a negative leading number, as in intermediate states
            assert evaluate("-" + p.question) == eval("-" + p.question)
    assert evaluate(" 7 ") == 7 and evaluate("-37") == -37


@pytest.mark.parametrize("bad", ["", " ", "abc", "1+-2", "3++4", "3 + 4", "+3", "3+", "*2", "--3",
                                 "(1+2)", "1/2", "١+٢", "1" * 10_000, None])
def test_evaluate_rejects_malformed(bad):
    with pytest.raises(ValueError):
        evaluate(bad)


def test_reference_steps_hand_examples():
    assert reference_steps("3+4*5-2") == ["3+20-2", "23-2", "21"]
    assert reference_steps("3-20*2") == ["3-40", "-37"]
    assert reference_steps("2*3*4+1") == ["6*4+1", "24+1", "25"]
    assert reference_steps("42") == [] and reference_steps("-5") == []
    with pytest.raises(ValueError):
        reference_steps("3+")


def test_reference_steps_reduce_one_operator_per_step():
    for p in generate_problems(2000, seed=3, n_operands=(2, 6)):
        assert list(p.steps) == reference_steps(p.question)
        assert len(p.steps) == p.n_operands - 1
        prev = p.question
        for step in p.steps:
            assert n_ops(step) == n_ops(prev) - 1
            assert evaluate(step) == evaluate(prev) == p.answer
            prev = step
        assert p.steps[-1] == str(p.answer)

# -----------------------------------------------------------------------------
# step verifier

def test_verify_accepts_all_reference_solutions():
    for k in range(2, 7):
        for p in generate_problems(800, seed=100 + k, n_operands=k):
            v = verify_steps(p.question, p.steps)
            assert all(v.step_correct) and len(v.step_correct) == k - 1
            assert v.first_error is None and v.complete and v.answer_correct and v.answer == p.answer


def test_verify_accepts_alternative_legal_orders():
    v = verify_steps("2*3+4*5", ["2*3+20", "6+20", "26"])
    assert v.step_correct == (True, True, True) and v.answer_correct
    assert verify_steps("2*3*4", ["2*12", "24"]).step_correct == (True, True)  # * is associative
    assert verify_steps("1+2+3*4", ["3+3*4", "3+12", "15"]).step_correct == (True, True, True)
    assert verify_steps("3-20", [" -17 "]).step_correct == (True,)  # surrounding whitespace is fine


def check(question, steps, correct, first_error, answer_correct, complete=True):
    v = verify_steps(question, steps)
    assert v.step_correct == correct
    assert v.first_error == first_error
    assert v.answer_correct == answer_correct
    assert v.complete == complete


def test_verify_catches_wrong_arithmetic():
    check("3+4*5-2", ["3+21-2", "24-2", "22"], (False, True, True), 0, False)


def test_verify_catches_skipped_reduction():
    check("3+4*5", ["23"], (False,), 0, True)  # right answer, but two reductions at once
    check("3+4*5-2", ["3+20-2", "21"], (True, False), 1, True)


def test_verify_catches_wrong_precedence():
    check("3+4*5", ["7*5", "35"], (False, True), 0, False)
    check("1*2+3", ["1*5", "5"], (False, True), 0, True)  # value happens to match; still wrong order
    check("10-4+3", ["10-7", "3"], (False, True), 0, False)  # + and - go left to right


def test_verify_catches_reordering():
    check("3+4*5", ["5*4+3", "20+3", "23"], (False, True, True), 0, True)


@pytest.mark.parametrize("bad", ["", "garbage", "1+-2", "3 + 20", "1" * 10_000, "٢٣", None])
def test_verify_malformed_step_fails_it_and_everything_after(bad):
    v = verify_steps("3+4*5-2", ["3+20-2", bad, "23-2", "21"])
    assert v.step_correct == (True, False, False, False)
    assert v.first_error == 1
    assert v.answer == 21 and v.answer_correct  # the final text is still the right number


def test_verify_catches_extra_step_after_answer():
    check("3+4", ["7", "7"], (True, False), 1, True)
    check("3+4", ["7", "7+0"], (True, False), 1, False, complete=False)


def test_verify_edge_cases_never_raise():
    check("3+4", [], (), None, False, complete=False)
    check("3+4", ["3+4"], (False,), 0, False, complete=False)  # no reduction at all
    check("nonsense", ["7"], (False,), 0, False)  # malformed question: nothing can be correct
    check("1" * 10_000, ["7"], (False,), 0, False)
    v = verify_steps("3+4*5-2", ["3+20-2", "23-2", "garbage"])
    assert v.step_correct == (True, True, False) and v.answer is None and not v.complete


def test_verify_and_parse_never_raise_on_random_text():
    rng = random.Random(0)
    alphabet = "0123456789+-* \n٣x"

    def text():
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))

    for _ in range(3000):
        v = verify_steps(text(), [text() for _ in range(rng.randint(0, 4))])
        assert len(v.step_correct) <= 4 and (v.first_error is None) == all(v.step_correct)
        t = text()
        r = parse_answer(t)
        assert r is None or (isinstance(r, int) and r == int(t))  # None unless t is a plain integer

# -----------------------------------------------------------------------------
# answers and grading

def test_parse_answer():
    assert parse_answer("21") == 21 and parse_answer("  -37\n") == -37 and parse_answer("0") == 0
    for bad in ["", " ", "abc", "21 apples", "2 1", "+5", "--5", "1+2", "3.0", "٢١", "9" * 10_000, None]:
        assert parse_answer(bad) is None


def test_grade():
    p = ArithProblem(id="x", question="3-20*2", answer=-37, steps=("3-40", "-37"), n_operands=3)
    assert grade(p, "-37") and grade(p, " -37 ")
    assert not grade(p, "37") and not grade(p, "") and not grade(p, "-37.") and not grade(p, "1" * 5000)

# -----------------------------------------------------------------------------
# fixed splits

def test_splits_sizes_ids_and_operand_counts():
    train, dev, test = load_split("train"), load_split("dev"), load_split("test")
    assert len(train) == 200_000 and len(dev) == 500 and len(test) == 500
    assert {p.n_operands for p in train} == {2, 3, 4} and {p.n_operands for p in dev} == {2, 3, 4}
    assert [p.n_operands for p in test] == [k for k in range(2, 7) for _ in range(100)]
    assert test[42].id == "test-v1-00042" and dev[0].id == "dev-v1-00000" and train[-1].id == "train-v1-199999"
    for p in dev + test:
        assert all(1 <= int(x) <= 30 for x in re.split(r"[-+*]", p.question))
        assert p.answer == eval(p.question)
    with pytest.raises(ValueError):
        load_split("validation")


def test_splits_do_not_overlap():
    train_q = {p.question for p in load_split("train")}
    dev_q = [p.question for p in load_split("dev")]
    test_q = [p.question for p in load_split("test")]
    assert len(set(dev_q)) == len(dev_q) and len(set(test_q)) == len(test_q)
    assert not train_q & set(dev_q) and not train_q & set(test_q) and not set(dev_q) & set(test_q)


def test_fresh_problems_avoid_dev_and_test_and_are_deterministic():
    held_out = {p.question for p in load_split("dev") + load_split("test")}
    fresh = arith.fresh_problems(3000, seed=5, n_operands=(2, 6))
    assert len(fresh) == 3000 and {p.n_operands for p in fresh} == {2, 3, 4, 5, 6}
    assert not {p.question for p in fresh} & held_out  # 2-operand draws collide often, so this bites
    assert [p.question for p in fresh] == [p.question for p in arith.fresh_problems(3000, seed=5, n_operands=(2, 6))]
    assert all(p.answer == eval(p.question) and p.steps == tuple(reference_steps(p.question)) for p in fresh[:200])


def test_load_split_returns_fresh_copies():
    a = load_split("dev")
    a.clear()
    assert len(load_split("dev")) == 500


def test_splits_are_pinned():
    def fingerprint(name):
        return hashlib.sha256("\n".join(p.question for p in load_split(name)).encode()).hexdigest()
    assert arith.ARITH_VERSION == "v1"
    assert fingerprint("test") == TEST_SHA256
    assert fingerprint("dev") == DEV_SHA256
