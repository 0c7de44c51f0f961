"""Search strategies over a policy and a PRM, behind one interface and one registry.

    import strategies
    strategy = strategies.get_strategy("beam")
    results = strategy.search(problems, policy, prm, strategies.SearchConfig(n=16, beam_width=4))

`problems` are objects with a `.question` (and optionally an `.id`); `policy` and `prm` are
anything that fits the `Policy` and `PRM` protocols (strategies/base.py): `engine.Policy`,
`engine.VLLMPRM` or `engine.HFPRM`, `problems.oracle.OraclePRM` (prm None for a strategy
whose `needs_prm` is False: greedy, majority).
"""

from strategies import beam, best_of_n, dfs, dvts, greedy_retry, mcts  # noqa: F401  (registers them)
from strategies.base import AGGREGATIONS, PRM, SELECTIONS, STRATEGIES, Candidate, Policy, SearchConfig, SearchResult, Strategy, aggregate, get_strategy, select

__all__ = ["AGGREGATIONS", "PRM", "SELECTIONS", "STRATEGIES", "Candidate", "Policy", "SearchConfig", "SearchResult", "Strategy",
           "aggregate", "get_strategy", "select"]
