"""How a notebook exercise is checked: one friendly line, pass or fail, and never an exception.

A course notebook holds exercise cells (tag ``exercise`` and a stable id tag such as
``exercise-02-a``) whose unsolved template binds ``answer_02a = ...``; the cell after it calls a
``check_*`` function of :mod:`svdinst.course.exercises`. A check recomputes the truth from the
kit or the model in the notebook, compares, and prints one line — ``✅ 02-a: …`` or
``❌ 02-a: … Hint: …`` — so a notebook with unsolved exercises still runs to its end (papermill,
CI, a learner's "Run all"). The line's first characters are what ``tools/solutions.py verify``
and the tests read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PASS, FAIL = "✅", "❌"
UNSOLVED = "not answered yet: replace `...` with your code"


@dataclass(frozen=True)
class Outcome:
    """The result of one check.

    Args:
        exercise (`str`): the exercise id, e.g. ``"02-a"``.
        passed (`bool`): whether the answer matched the truth the check recomputed.
        message (`str`): what was compared (and, on a failure, the hint).
    """

    exercise: str
    passed: bool
    message: str

    @property
    def line(self) -> str:
        """The one line printed in the notebook."""
        return f"{PASS if self.passed else FAIL} {self.exercise}: {self.message}"

    def _ipython_display_(self) -> None:
        """The line was printed by the check already; show nothing more as the cell's value."""


class Mismatch(Exception):
    """Raised inside a grader when the answer is wrong; its message becomes the ❌ line."""


def exercise(exercise_id: str, hint: str) -> Callable[[Callable[..., str]], Callable[..., Outcome]]:
    """Turn a grader into a check that prints one line and never raises.

    The grader receives the learner's answer (and the notebook's context arguments), recomputes
    the truth, and returns the ✅ message, or raises :class:`Mismatch` (or any error, e.g. a wrong
    shape) for a ❌. An answer still ``...`` (the unsolved template) fails without calling it.

    Args:
        exercise_id (`str`): the id shown in the line, e.g. ``"02-a"``.
        hint (`str`): appended to every ❌ line.
    """

    def wrap(grader: Callable[..., str]) -> Callable[..., Outcome]:
        @functools.wraps(grader)
        def check(answer: Any, *args: Any, **kwargs: Any) -> Outcome:
            if answer is Ellipsis:
                outcome = Outcome(exercise_id, False, f"{UNSOLVED}. Hint: {hint}")
            else:
                try:
                    outcome = Outcome(exercise_id, True, grader(answer, *args, **kwargs))
                except Mismatch as wrong:
                    outcome = Outcome(exercise_id, False, f"{wrong} Hint: {hint}")
                except Exception as error:  # a learner's answer may fail in any way: say so
                    why = f"{type(error).__name__}: {error}".splitlines()[0]
                    outcome = Outcome(
                        exercise_id, False, f"checking it failed ({why}). Hint: {hint}"
                    )
            print(outcome.line)
            return outcome

        check.exercise_id = exercise_id  # type: ignore[attr-defined]
        return check

    return wrap


def require_close(
    name: str, got: Any, want: float, *, rtol: float = 1e-4, atol: float = 1e-8
) -> None:
    """Raise :class:`Mismatch` unless the number ``got`` is ``want`` within the tolerance."""
    value = float(got)
    if not abs(value - want) <= atol + rtol * abs(want):
        raise Mismatch(f"{name} is {value:.6g}, but the kit computes {want:.6g}.")


def relative_error(got: Any, want: Any) -> float:
    """‖got − want‖ / ‖want‖ of two tensors of one shape (Frobenius norms): the exercises' measure."""
    return float((got - want).norm() / want.norm())
