"""Search strategies over a policy and a PRM, behind one interface and one registry.

    import strategies
    strategy = strategies.get_strategy("beam")
    results = strategy.search(problems, policy, prm, strategies.SearchConfig(n=16, beam_width=4))

`problems` are objects with a `.question` (and optionally an `.id`); `policy` is an
`engine.Policy`, `prm` an `engine.VLLMPRM` or `engine.HFPRM` (None for `majority`).
"""

from strategies import beam, best_of_n, dvts, greedy_retry, mcts  # noqa: F401  (registers them)
from strategies.base import STRATEGIES, Candidate, SearchConfig, SearchResult, Strategy, aggregate, get_strategy, select

__all__ = ["STRATEGIES", "Candidate", "SearchConfig", "SearchResult", "Strategy", "aggregate", "get_strategy", "select"]
