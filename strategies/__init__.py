"""Search strategies over a policy and a PRM (greedy-retry, beam, best-of-N, DVTS, MCTS)."""
