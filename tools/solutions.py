"""The notebooks' exercises: solved copies for CI, and a check that every exercise passed.

Every exercise cell of a notebook is tagged ``exercise`` and ``exercise-<id>`` (e.g.
``exercise-02-a``) and holds the unsolved template: comments, then ``answer_02a = ...``. The
solutions live beside the notebooks in ``notebooks/solutions/<notebook stem>.py``, one
``# %% exercise-<id>`` section per exercise.

    python tools/solutions.py solve notebooks/02_svd_decomposition.ipynb --out build/solved
    python tools/solutions.py verify build/test-notebooks/reports/executed/02_svd_decomposition.ipynb
    python tools/solutions.py templates            # every exercise cell is the unsolved template

``solve`` prints the solved copy's path (the Makefile runs that copy with papermill when
``SOLVED=1``, as ``make test`` does); ``verify`` exits 1 unless every exercise's check printed
✅ — ``make reproduce`` runs the unsolved notebooks, so the executed ones a learner reads show
each ❌ line and its hint.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
SOLUTIONS = NOTEBOOKS / "solutions"
EXERCISE_TAG = "exercise"
ID_TAG = re.compile(r"^exercise-(\d\d-[a-z])$")
SECTION = re.compile(r"^# %% exercise-(\d\d-[a-z])\s*$", re.M)
PASS, FAIL = "✅", "❌"  # svdinst.course.grading's marks (read here without importing the kit)


def exercise_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    """The notebook's exercise cells by id, in notebook order (ids must be unique)."""
    found: dict[str, nbformat.NotebookNode] = {}
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if EXERCISE_TAG not in tags:
            continue
        ids = [m.group(1) for t in tags if (m := ID_TAG.match(t))]
        if len(ids) != 1 or ids[0] in found:
            raise SystemExit(f"an exercise cell needs one unique 'exercise-NN-x' tag, got {tags}.")
        found[ids[0]] = cell
    return found


def answer_name(exercise_id: str) -> str:
    """``"02-a"`` → ``"answer_02a"``, the variable the exercise cell binds."""
    return "answer_" + exercise_id.replace("-", "")


def is_template(source: str, exercise_id: str) -> bool:
    """Whether ``source`` is the unsolved template: comments and ``answer_<id> = ...`` only."""
    body = ast.parse(source).body
    return (
        len(body) == 1
        and isinstance(body[0], ast.Assign)
        and [ast.unparse(t) for t in body[0].targets] == [answer_name(exercise_id)]
        and isinstance(body[0].value, ast.Constant)
        and body[0].value.value is Ellipsis
    )


def read_solutions(path: Path) -> dict[str, str]:
    """``{exercise id: code}`` from a solutions file's ``# %% exercise-<id>`` sections."""
    if not path.is_file():
        raise SystemExit(
            f"No solutions file {path}; write one '# %% exercise-<id>' section per exercise."
        )
    text = path.read_text()
    marks = list(SECTION.finditer(text))
    sections = {}
    for mark, nxt in zip(marks, [*marks[1:], None]):
        sections[mark.group(1)] = text[mark.end() : nxt.start() if nxt else len(text)].strip("\n")
    return sections


def solve(notebook: Path, out_dir: Path, solutions_dir: Path = SOLUTIONS) -> Path:
    """Write ``out_dir/<notebook name>`` with every exercise cell replaced by its solution.

    Raises `SystemExit` naming the file when an exercise has no solution, a solution has no
    exercise, or a solution does not bind the exercise's answer variable.
    """
    nb = nbformat.read(notebook, as_version=4)
    cells = exercise_cells(nb)
    solutions = read_solutions(solutions_dir / f"{notebook.stem}.py")
    if set(cells) != set(solutions):
        raise SystemExit(
            f"{notebook.name}: exercises {sorted(cells)} but solutions {sorted(solutions)} in "
            f"{solutions_dir / (notebook.stem + '.py')}; they must match one to one."
        )
    for exercise_id, cell in cells.items():
        code = solutions[exercise_id]
        bound = {
            ast.unparse(t) for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Assign)
            for t in node.targets
        }  # fmt: skip
        if answer_name(exercise_id) not in bound:
            raise SystemExit(
                f"the solution of {exercise_id} never binds {answer_name(exercise_id)}."
            )
        cell.source = code
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / notebook.name
    nbformat.write(nb, out)
    return out


def printed_lines(executed: dict) -> list[str]:
    """Every line of text an executed notebook's cells printed or displayed."""
    lines = []
    for cell in executed["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            lines += "".join(text).splitlines()
    return lines


def verify(executed_path: Path) -> list[str]:
    """Problems with an executed *solved* notebook: exercises whose check did not print ✅."""
    executed = nbformat.read(executed_path, as_version=4)  # parsed once: cells and outputs
    ids = exercise_cells(executed)
    lines = printed_lines(executed)
    problems = [f"{executed_path.name}: {line}" for line in lines if line.startswith(FAIL)]
    for exercise_id in ids:
        if not any(line.startswith(f"{PASS} {exercise_id}:") for line in lines):
            problems.append(f"{executed_path.name}: exercise {exercise_id} printed no ✅ line")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="solutions", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_solve = sub.add_parser("solve", help="write solved copies; print their paths")
    p_solve.add_argument("notebooks", nargs="+", type=Path)
    p_solve.add_argument("--out", type=Path, required=True)
    p_verify = sub.add_parser(
        "verify", help="exit 1 unless every check of these executed notebooks passed"
    )
    p_verify.add_argument("executed", nargs="+", type=Path)
    p_tmpl = sub.add_parser(
        "templates", help="exit 1 unless every exercise cell is the unsolved template"
    )
    p_tmpl.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.command == "solve":
        for notebook in args.notebooks:
            print(solve(notebook, args.out))
        return 0
    if args.command == "verify":
        problems = [p for path in args.executed for p in verify(path)]
        print("\n".join(problems) or f"every exercise passed ({len(args.executed)} notebook(s))")
        return 1 if problems else 0
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    bad = [
        f"{path.name}: exercise {i} is not the template"
        for path in paths
        for i, cell in exercise_cells(nbformat.read(path, as_version=4)).items()
        if not is_template(cell.source, i)
    ]
    print("\n".join(bad) or "every exercise cell is the unsolved template")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
