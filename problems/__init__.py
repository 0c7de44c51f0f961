"""The problem layer: what is asked, how an answer or a step is judged, and the numbers about it.

- `worlds.py`: the interface of an embedded world and its registry; `arith.py` (step-wise
  arithmetic) and `countdown.py` (the countdown planning world) implement it.
- `datasets.py`: problems by name (`arith-test`, `countdown-dev`, ...) or from a user's file.
- `step_data.py`: step-labelled paths (Math-Shepherd, PRM800K, ProcessBench, CHAMP).
- `oracle.py`: a world's exact process labels served as a PRM (`--prm oracle`).
- `metrics.py`: accuracy intervals, the first wrong step, PRM step metrics.

It depends on `engine` only (answers, the step format and path types).
"""
