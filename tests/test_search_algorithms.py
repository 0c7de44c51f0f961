"""Exact tests of each search algorithm against the deterministic fake policy and PRM (no models).

They pin down what real models cannot: which path wins, what votes, what is asked of the
policy and how the budget is spent, and that a problem's result does not depend on its batch.
"""

from dataclasses import replace
from types import SimpleNamespace

import pytest

from engine.answers import answer_key
from engine.types import StepPath
from strategies import Candidate, SearchConfig, get_strategy, select
from strategies.mcts import Node, backup, select_leaf
from tests.fakes import FakePolicy, FakePRM, random_scores, random_world, scripted, table

Q = SimpleNamespace(question="q", id="q")


def run(name, tree, scores, config, problems=(Q,), random=False):
    policy, prm = FakePolicy(scripted(tree) if isinstance(tree, dict) else tree, random=random), FakePRM(table(scores) if isinstance(scores, dict) else scores)
    results = get_strategy(name).search(list(problems), policy, prm, config)
    return results, policy, prm


def asked(policy, kind="propose"):
    return [(r.steps, r.n) for r in policy.asked(kind=kind)]


# -- beam ---------------------------------------------------------------------------------


def test_beam_keeps_the_top_n_over_m_by_the_configured_aggregation():
    tree = {(): ["a", "b", "c", "d"], ("a",): ["a1", "a2"], ("b",): ["b1", "b2"],
            **{(x, y): [("1", True)] for x in "ab" for y in (x + "1", x + "2")}}
    scores = {("a",): .9, ("b",): .5, ("c",): .1, ("d",): .1,
              ("a", "a1"): .4, ("a", "a2"): .4, ("b", "b1"): .6, ("b", "b2"): .5}
    cfg = SearchConfig(n=4, beam_width=2, temperature=1.0)
    # round 1: the root proposes n = 4; the n/M = 2 best (a, b) each propose M = 2
    _, policy, _ = run("beam", tree, scores, replace(cfg, aggregation="last"))
    assert asked(policy)[:3] == [((), 4), (("a",), 2), (("b",), 2)]
    # round 3 expands the 2 best of a1 a2 b1 b2: by the last score b1 b2, by the product a1 a2
    assert {s for s, _ in asked(policy)[3:5]} == {("b", "b1"), ("b", "b2")}
    _, policy, _ = run("beam", tree, scores, replace(cfg, aggregation="prod"))
    assert {s for s, _ in asked(policy)[3:5]} == {("a", "a1"), ("a", "a2")}


def test_beam_tops_back_up_to_n_merges_duplicates_keeps_finished_and_selects():
    tree = {(): ["x1", "x2", "x3", "x4"],
            ("x1",): [("7", True), ("8", True)],  # both finish: they leave the beam
            ("x2",): ["y"],  # both proposals are "y": merged into one live path
            ("x2", "y"): [("8", True)]}
    scores = {("x1",): .9, ("x2",): .8, ("x3",): .2, ("x4",): .1,
              ("x1", "7"): .9, ("x1", "8"): .2, ("x2", "y"): .5, ("x2", "y", "8"): .35}
    cfg = SearchConfig(n=4, beam_width=2, temperature=1.0)
    [r], policy, _ = run("beam", tree, scores, cfg)
    # the one live path is topped back up to n = 4 proposals; then 6 paths have finished (>= n): stop
    assert asked(policy) == [((), 4), (("x1",), 2), (("x2",), 2), (("x2", "y"), 4)]
    # the n best-scored finished paths are the candidates: x1-8 (0.2) is cut
    assert [c.path.steps for c in r.candidates] == [("x1", "7")] + [("x2", "y", "8")] * 3
    assert all(c.finished for c in r.candidates)
    assert r.answer == "8"  # weighted (default): 3 x 0.35 = 1.05 > 0.9
    assert run("beam", tree, scores, replace(cfg, selection="prm"))[0][0].answer == "7"
    assert run("beam", tree, scores, replace(cfg, selection="majority"))[0][0].answer == "8"


def test_beam_spreads_n_when_m_does_not_divide_it():
    tree = {(): ["a", "b", "c"], ("a",): [("1", True)], ("b",): [("2", True)], ("c",): [("3", True)]}
    _, policy, _ = run("beam", tree, {("a",): .9, ("b",): .8, ("c",): .1}, SearchConfig(n=5, beam_width=2, temperature=1.0))
    assert asked(policy) == [((), 5), (("a",), 3), (("b",), 2)]  # n/M = 2 paths share n = 5 proposals


def test_beam_answers_with_a_depth_capped_path_only_if_none_finished():
    tree = {(): ["a"], ("a",): ["a"], ("a", "a"): ["a"]}
    [r], _, _ = run("beam", tree, {}, SearchConfig(n=2, beam_width=1, max_steps=2))
    assert r.path.steps == ("a", "a") and not r.path.finished


# -- dvts ---------------------------------------------------------------------------------


def test_dvts_runs_n_over_m_subtrees_and_all_n_final_candidates_vote():
    tree = {(): ["g", "a", "b", "c", "d"],  # sampled in turn after the greedy "g": a b, then c d
            ("a",): [("1", True), ("2", True)],
            ("d",): [("2", True), "e"]}
    scores = {("a",): .9, ("b",): .1, ("c",): .2, ("d",): .8,
              ("a", "1"): .5, ("a", "2"): .4, ("d", "2"): .3, ("d", "e"): .1}
    cfg = SearchConfig(n=4, beam_width=2, temperature=1.0)
    [r], policy, _ = run("dvts", tree, scores, cfg)
    # two subtrees of width 2: the first gets a b, the second c d
    assert asked(policy) == [((), 2), ((), 2), (("a",), 2), (("d",), 2)]
    assert sorted(c.path.steps for c in r.candidates) == [("a", "1"), ("a", "2"), ("d", "2"), ("d", "e")]
    assert r.answer == "2"  # weighted: 0.4 + 0.3 > 0.5; the unfinished d-e does not vote
    assert run("dvts", tree, scores, replace(cfg, selection="prm"))[0][0].answer == "1"


def test_dvts_with_one_subtree_still_has_n_votes():
    tree = {(): ["a"], ("a",): [("1", True), ("2", True), ("2", True), ("3", True)]}
    [r], policy, _ = run("dvts", tree, {}, SearchConfig(n=4, beam_width=4, temperature=1.0, selection="majority"))
    assert asked(policy) == [((), 4), (("a",), 4)]
    assert len(r.candidates) == 4 and r.answer == "2"


# -- mcts ---------------------------------------------------------------------------------


def node(steps, scores, visits=0, value_sum=0.0, aggregation="last"):
    c = Candidate(StepPath("q", steps), scores)
    return Node(c, c.value(aggregation), visits=visits, value_sum=value_sum)


def test_puct_picks_the_expected_child_by_hand():
    root = node((), [], visits=2)
    a = node(("a",), [.5])  # unvisited: Q = v = 0.5, P = 0.5
    b = node(("b",), [.2], visits=2, value_sum=1.6)  # Q = 0.8, P = 0.2
    root.children = [a, b]
    # c = 1: a 0.5 + 0.5 * sqrt(2) / 1 = 1.21, b 0.8 + 0.2 * sqrt(2) / 3 = 0.89
    assert select_leaf(root, SearchConfig(c_puct=1.0)) is a
    assert select_leaf(root, SearchConfig(c_puct=0.0)) is b  # greedy in Q


def test_unvisited_q_is_on_the_backed_up_scale():
    # with prod, an unvisited child's Q is its path's product (0.45), not its last step's 0.9
    root = node((), [], visits=1)
    x = node(("x",), [.5], visits=1, value_sum=.5, aggregation="prod")
    y = node(("y", "z"), [.5, .9], aggregation="prod")
    root.children = [x, y]
    assert y.q() == pytest.approx(.45)
    assert select_leaf(root, SearchConfig(c_puct=0.0, aggregation="prod")) is x


def test_backup_adds_visits_and_value_to_the_root():
    root = node((), [])
    child = node(("a",), [.3])
    child.parent = root
    backup(child, .7)
    backup(child, .1)
    assert (child.visits, child.value_sum, root.visits, root.value_sum) == (2, pytest.approx(.8), 2, pytest.approx(.8))


def test_mcts_spends_its_budget_per_problem_whatever_the_batch():
    quick = SimpleNamespace(question="quick", id="quick")  # finishes at once: its tree settles
    long = SimpleNamespace(question="long", id="long")
    cfg = SearchConfig(mcts_iterations=5, mcts_expand=2, temperature=1.0, max_steps=20)
    alone, policy_alone, _ = run("mcts", random_world, random_scores, cfg, [long], random=True)
    both, policy_both, _ = run("mcts", random_world, random_scores, cfg, [quick, long], random=True)
    assert len(policy_alone.asked("long", "propose")) == 5 == len(policy_both.asked("long", "propose"))
    assert same(alone[0], both[1])
    tree = lambda q, steps: [("7", True)]  # noqa: E731
    [r], policy, _ = run("mcts", tree, {}, cfg, [quick])
    assert len(policy.asked(kind="propose")) == 1 and r.answer == "7"  # settled: nothing left to expand


def test_mcts_merges_identical_siblings_and_backs_up_the_best_child():
    tree = {(): ["a", "a", "b"], ("a",): [("1", True)], ("b",): [("2", True)]}
    [r], policy, _ = run("mcts", tree, {("a",): .8, ("b",): .3, ("a", "1"): .9}, SearchConfig(mcts_iterations=1, mcts_expand=3, temperature=1.0))
    assert sorted(c.path.steps for c in r.candidates if len(c.path.steps) == 1) == [("a",), ("b",)]


def test_mcts_rollouts_are_kept_and_can_be_the_answer():
    tree = {(): ["a"], ("a",): ["b"], ("a", "b"): [("9", True)]}
    cfg = SearchConfig(mcts_iterations=1, mcts_expand=1, mcts_rollout=True, temperature=1.0)
    [r], policy, _ = run("mcts", tree, {("a", "b", "9"): .95}, cfg)
    # one expansion (root -> a), one rollout from a to the end: that finished rollout is the answer,
    # with no extra rollout to finish a path
    assert len(policy.asked(kind="propose")) == 1 and len(policy.asked(kind="complete")) == 1
    assert r.path.steps == ("a", "b", "9") and r.path.finished and r.answer == "9"


def test_mcts_out_of_budget_finishes_the_most_visited_path():
    tree = {(): ["a", "b"], ("a",): ["a2"], ("b",): ["b2"], ("a", "a2"): [("1", True)], ("b", "b2"): [("2", True)]}
    cfg = SearchConfig(mcts_iterations=1, mcts_expand=2, temperature=1.0)
    [r], policy, _ = run("mcts", tree, {("a",): .3, ("b",): .7}, cfg)
    assert asked(policy, "complete") == [(("b",), 1)]  # b got the visit (best child)
    assert r.path.steps == ("b", "b2", "2")


# -- dfs ----------------------------------------------------------------------------------


def test_dfs_goes_deeper_on_the_best_child_backtracks_when_pruned_and_stops_at_an_accepted_answer():
    tree = {(): ["a", "b"], ("a",): ["a1", "a2"], ("b",): [("7", True), "b1"]}
    scores = {("a",): .9, ("b",): .6, ("a", "a1"): .2, ("a", "a2"): .3, ("b", "7"): .8}  # ("b", "b1"): .5 by default
    [r], policy, _ = run("dfs", tree, scores, SearchConfig(n=8, beam_width=2, dfs_prune=.5, temperature=1.0))
    # a (.9) first; both its children pruned (< .5): back to b, whose finished child (.8) is accepted at once
    assert asked(policy) == [((), 2), (("a",), 2), (("b",), 2)]
    assert r.path.steps == ("b", "7") and r.path.finished and r.answer == "7"
    assert [c.path.steps for c in r.candidates] == [("a",), ("b", "7"), ("b",), ("b", "b1"), ("a", "a2"), ("a", "a1")]


def test_dfs_prunes_and_accepts_by_the_last_steps_score_and_answers_out_of_budget_by_the_aggregation():
    tree = {(): ["a", "b"], ("a",): [("1", True)], ("b",): [("2", True)]}
    scores = {("a",): .9, ("b",): .3, ("a", "1"): .6, ("b", "2"): .95}
    cfg = SearchConfig(n=3, beam_width=2, dfs_prune=.25, dfs_accept=.7, aggregation="prod", temperature=1.0)
    [r], policy, _ = run("dfs", tree, scores, cfg)
    # a-1 passes the pruning (.6 >= .25) but not the acceptance (< .7): back to b, whose b-2 (.95)
    # is accepted, though by prod it ranks below a-1 (.285 vs .54)
    assert asked(policy) == [((), 2), (("a",), 2), (("b",), 2)] and r.path.steps == ("b", "2")
    cfg = SearchConfig(n=3, beam_width=2, dfs_prune=.25, dfs_accept=.99, aggregation="prod", temperature=1.0)
    [r], policy, _ = run("dfs", tree, scores, cfg)
    # nothing accepted, the budget spent: the best finished path by prod (a-1), not by its last step (b-2)
    assert asked(policy) == [((), 2), (("a",), 2), (("b",), 2)] and r.path.steps == ("a", "1")
    cfg = SearchConfig(n=3, beam_width=2, dfs_prune=.5, dfs_accept=.7, aggregation="prod", temperature=1.0)
    [r], policy, _ = run("dfs", tree, scores, cfg)
    assert asked(policy) == [((), 2), (("a",), 2), ((), 2)] and r.path.steps == ("a", "1")  # b pruned (.3 < .5)


def test_dfs_out_of_budget_takes_the_best_finished_path_else_finishes_the_best_open_one():
    tree = {(): [("1", True), ("2", True)]}
    [r], policy, _ = run("dfs", tree, {("1",): .3, ("2",): .4}, SearchConfig(n=1, beam_width=2, dfs_prune=.5, temperature=1.0))
    assert r.answer == "2" and asked(policy, "complete") == []  # both pruned, the budget spent: the better one
    tree = {(): ["a"], ("a",): ["b"], ("a", "b"): ["c"], ("a", "b", "c"): [("9", True)]}
    [r], policy, _ = run("dfs", tree, {("a",): .6, ("a", "b"): .7}, SearchConfig(n=2, beam_width=1, temperature=1.0))
    assert asked(policy) == [((), 1), (("a",), 1)] and asked(policy, "complete") == [(("a", "b"), 1)]
    assert r.path.steps == ("a", "b", "c", "9") and r.answer == "9"


def test_dfs_width_sets_the_children_of_an_expansion_apart_from_beam_width():
    tree = {(): ["a", "b", "c"], ("a",): [("1", True)]}
    scores = {("a",): .9, ("a", "1"): .9}
    [r], policy, _ = run("dfs", tree, scores, SearchConfig(n=4, beam_width=1, dfs_width=3, temperature=1.0))
    assert asked(policy) == [((), 3), (("a",), 3)] and r.answer == "1"
    every = {(): ["a", "b", "c"], **{(x,): [("1", True)] for x in "abc"}}
    [r], policy, _ = run("dfs", every, scores, SearchConfig(n=2, beam_width=4, dfs_width=8, temperature=1.0))
    assert asked(policy)[0] == ((), 2)  # at most n
    with pytest.raises(ValueError, match="dfs_width"):
        run("dfs", tree, scores, SearchConfig(n=4, dfs_width=0))


def test_dfs_drops_paths_met_before_and_expands_the_question_afresh_when_the_stack_is_empty():
    tree = {(): ["a", "b"], ("b",): [("5", True)]}
    [r], policy, _ = run("dfs", tree, {("a",): .1, ("b",): .1}, SearchConfig(n=3, beam_width=2, temperature=1.0))
    assert asked(policy) == [((), 2)] * 3  # everything pruned: the question again, its repeats dropped
    assert asked(policy, "complete") == [(("b",), 1)]  # out of budget: the best open path (first of equals) finished
    assert [c.path.steps for c in r.candidates] == [("b", "5"), ("b",), ("a",)] and r.answer == "5"


# -- greedy_retry -------------------------------------------------------------------------


def test_greedy_retry_ends_after_a_fallback_step():
    tree = {(): ["g", "s1"], ("s1",): [("", True), "junk"], ("g",): [("", True)]}
    cfg = SearchConfig(threshold=.5, max_retries_per_step=2, temperature=1.0)
    [r], policy, _ = run("greedy_retry", tree, {("g",): .1, ("s1",): .3}, cfg)
    # g (greedy) .1, then sampled s1 .3 and g .1: out of retries, the best seen (s1) is taken;
    # then EOS alone is accepted although the path's last score (.3) is below the threshold
    assert [s for s, _ in asked(policy)] == [(), (), (), ("s1",)]
    assert r.path.steps == ("s1",) and r.path.finished and r.answer == "s1"


def test_greedy_retry_takes_the_best_candidate_seen():
    tree = {(): ["g", "s1", "s2"], ("s1",): [("", True)]}
    [r], _, _ = run("greedy_retry", tree, {("g",): .1, ("s1",): .4, ("s2",): .2}, SearchConfig(threshold=.5, max_retries_per_step=2))
    assert r.path.steps == ("s1",) and [c.path.steps for c in r.candidates[:3]] == [("g",), ("s1",), ("s2",)]


def test_greedy_retry_accepts_at_the_threshold_and_respects_the_problem_budget():
    tree = lambda q, steps: [("", True)] if len(steps) == 6 else [(f"s{len(steps)}", False), ("x", False)]  # noqa: E731
    [r], policy, _ = run("greedy_retry", tree, lambda q, s: .2, SearchConfig(threshold=.5, max_retries_per_step=3, max_retries_per_problem=4))
    assert len(policy.asked(kind="propose")) == 6 + 4 + 1  # 6 positions, 4 retries in all, then EOS
    [r], _, _ = run("greedy_retry", tree, lambda q, s: .5, SearchConfig(threshold=.5))
    assert len(r.candidates) == 7  # every greedy step accepted at P = threshold


# -- best_of_n and selection -------------------------------------------------------------


def cand(answer, score=.5, finished=True):
    return Candidate(StepPath("q", ("work", answer), finished), [1.0, score])


def key(path):
    return answer_key(path.steps[-1]) if path.steps[-1] != "none" else None


def pick(cands, selection):
    return select(cands, selection, "last", key).path.steps[-1]


def test_votes_group_equivalent_answers():
    cands = [cand("3"), cand("0.5"), cand("3"), cand("1/2"), cand("\\frac12")]
    assert pick(cands, "majority") == "0.5"  # 0.5 = 1/2 = \frac12: 3 votes to 2
    assert pick([cand("72.0"), cand("5"), cand("72")], "majority") == "72.0"


def test_votes_ties_go_to_the_first_seen():
    assert pick([cand("1"), cand("2")], "majority") == "1" and pick([cand("2"), cand("1")], "majority") == "2"
    assert pick([cand("1", .3), cand("2", .3)], "weighted") == "1"
    assert pick([cand("1", .3), cand("2", .3)], "prm") == "1"


def test_weighted_vote_sums_scores_and_picks_the_best_of_the_winner():
    cands = [cand("1", .9), cand("2", .3), cand("2", .4), cand("2", .25)]
    assert pick(cands, "weighted") == "2" and select(cands, "weighted", "last", key).scores[-1] == .4
    assert pick(cands, "prm") == "1" and pick(cands, "majority") == "2"


def test_no_answer_does_not_vote_and_unfinished_candidates_only_when_nothing_finished():
    assert pick([cand("none"), cand("none"), cand("4")], "majority") == "4"
    assert pick([cand("9", .9, finished=False)] * 3 + [cand("4", .1)], "majority") == "4"
    assert pick([cand("9", .9, finished=False)] * 3 + [cand("4", .1)], "prm") == "4"
    assert pick([cand("9", finished=False), cand("8", .6, finished=False)], "prm") == "8"
    assert select([], "majority", "last", key) is None
    with pytest.raises(ValueError, match="unknown selection"):
        select([cand("1")], "best", "last", key)


def test_best_of_n_votes_over_finished_rollouts_only():
    tree = {(): [("7", True), "u", ("8", True)], ("u",): ["u"], ("u", "u"): ["u"]}
    policy = FakePolicy(scripted({**tree, **{("u",) * k: ["u"] for k in range(1, 31)}}), max_depth=5)
    [r] = get_strategy("majority").search([Q], policy, None, SearchConfig(n=4, temperature=1.0))
    # samples u, 8, 7, u: the two cut-off "u" rollouts do not vote; 8 and 7 tie, 8 came first
    assert [c.path.finished for c in r.candidates] == [False, True, True, False]
    assert r.answer == "8"


# -- batch invariance ---------------------------------------------------------------------


def same(a, b) -> bool:
    return (a.answer, a.path, a.scores, [(c.path, c.scores) for c in a.candidates]) == \
           (b.answer, b.path, b.scores, [(c.path, c.scores) for c in b.candidates])


@pytest.mark.parametrize("name, rollout", [(name, False) for name in ["greedy", "majority", "best_of_n", "beam", "dvts", "dfs", "greedy_retry", "mcts"]]
                         + [("mcts", True)])
def test_every_strategy_is_batch_invariant(name, rollout):
    p, q, r = (SimpleNamespace(question=f"problem {k}", id=str(k)) for k in range(3))
    cfg = SearchConfig(n=6, beam_width=2, temperature=1.0, mcts_iterations=6, mcts_expand=3, mcts_rollout=rollout, threshold=.6, seed=3)

    def search(problems):
        return run(name, random_world, random_scores, cfg, problems, random=True)[0]

    alone = search([p])[0]
    assert same(alone, search([p, q])[0]) and same(alone, search([q, p])[1]) and same(alone, search([q, r, p])[2])


def test_the_seed_changes_the_samples():
    p = SimpleNamespace(question="problem 0", id="0")
    answers = {tuple(c.path for c in run("majority", random_world, random_scores, SearchConfig(n=8, seed=s), [p], random=True)[0][0].candidates)
               for s in range(3)}
    assert len(answers) == 3
