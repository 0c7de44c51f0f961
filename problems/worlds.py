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
    QUESTION_CHARS, QUESTION_SHAPE, is_question(question) -> bool
                                         what a question may hold and look like (question_error
                                         below turns them into a message)
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


def question_error(world: ModuleType, question) -> str | None:
    """Why a question is not one the world (and the models trained on it) can take, naming the
    characters that do not belong; None if it can."""
    if not isinstance(question, str):
        return f"not a string: {question!r}"
    odd = sorted(set(question) - set(world.QUESTION_CHARS))
    if odd:
        return f"characters {''.join(odd)!r} are not in the {world.NAME} world ({world.QUESTION_SHAPE})"
    return None if world.is_question(question) else f"not a question of the {world.NAME} world ({world.QUESTION_SHAPE})"
