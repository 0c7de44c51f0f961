"""The embedded worlds, behind one small interface that trainers, evals, recipes and bench use.

A world is a module with:
    NAME, DIFFICULTY                      its name; what a problem's difficulty counts
    load_split(split) -> [problem]       the fixed, versioned "train", "dev" and "test" splits
    fresh_problems(n, seed) -> [problem] more training problems, never a dev or test question
    step_labels(question, steps) -> [bool]
                                         exact process labels: Positive iff the step and every
                                         step before it are right (countdown: and the target is
                                         still reachable)
    solved(question, steps, finished) -> bool
                                         the grader of a whole path
    question_error(question) -> str | None
                                         why a question is not one the world's models can take
                                         (naming the characters that do not belong), or None
A problem has `id`, `question`, `answer`, `difficulty` and `steps` (a reference solution).
`arith` and `countdown` are the two worlds.
"""

from __future__ import annotations

from types import ModuleType

from problems import arith, countdown

WORLDS: dict[str, ModuleType] = {arith.NAME: arith, countdown.NAME: countdown}


def get_world(name: str) -> ModuleType:
    if name not in WORLDS:
        raise KeyError(f"unknown world {name!r}; choose from {', '.join(sorted(WORLDS))}")
    return WORLDS[name]
