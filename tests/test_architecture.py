"""The package's architecture, checked: layers, cycles, file size, paths, design-doc links.

The layer order is read from the ```layers block of ``docs/DESIGN.md`` so the document and this
test cannot drift. The block has one line per layer, lowest first::

    0: __init__ errors cache device figures lazy
    1: formats
    ...
    10: cli

Each name is a top-level module or package of ``svdinst`` (``__init__`` is ``svdinst/__init__.py``).
A module ``svdinst.<name>[.…]`` sits at ``<name>``'s layer, so a package's ``cli.py`` sits at its
package's layer and ``svdinst.cli`` at the layer of ``cli``.

Imports are read with :mod:`ast` from every module of ``svdinst/``, including imports inside
functions (they run too) but not those under ``if TYPE_CHECKING:`` (they never run).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "svdinst"
DESIGN = ROOT / "docs" / "DESIGN.md"
MAX_LINES = 400
# A path outside the repository: the shared design folder next to it, or a machine's own folders.
OUTSIDE_PATH = re.compile(r"\.\./shared|(?<![\w.])/work/|(?<![\w.])/home/\w|(?<![\w.])/Users/\w")


# --- the checker ----------------------------------------------------------------------------


def read_layers(design: Path) -> dict[str, int]:
    """``{name: layer}`` from the ```layers block of ``design`` (see the module docstring)."""
    match = re.search(r"^```layers\n(.*?)^```", design.read_text(encoding="utf-8"), re.M | re.S)
    if match is None:
        raise AssertionError(f"{design}: no ```layers block (see tests/test_architecture.py).")
    layers: dict[str, int] = {}
    for line in match.group(1).splitlines():
        if not line.strip():
            continue
        number, sep, names = line.partition(":")
        if not sep or not number.strip().isdigit() or not names.split():
            raise AssertionError(f"{design}: bad layers line {line!r}; expected 'N: name name …'.")
        for name in names.split():
            if name in layers:
                raise AssertionError(f"{design}: {name!r} is in two layers.")
            layers[name] = int(number)
    return layers


def module_files(src: Path, package: str = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of the package at ``src/package``."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
            else:
                stack.append(child)


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` (file ``path``) imports at run time.

    ``from a.b import c`` counts as importing ``a.b.c`` when that is a module, else ``a.b``.
    """
    is_package = path.name == "__init__.py"
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.missing` → a.b
                target = target.rpartition(".")[0]
            if target.split(".")[0] == module.split(".")[0] and target != module:
                found.add(target)
    return found


def import_graph(src: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the package at ``src/package``."""
    modules = module_files(src, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def layer_name(module: str) -> str:
    """The layers-block name of ``module``: ``svdinst.data.io`` → ``data``, ``svdinst`` → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_violations(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """Every import of a higher layer, and every module importing its own package's ``__init__``."""
    problems = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = layers[layer_name(target)], layers[layer_name(module)]
            if low > high:
                problems.append(f"{module} (layer {high}) imports {target} (layer {low}, higher)")
            elif module.startswith(f"{target}.") and "." in target:
                problems.append(f"{module} imports its own package's __init__ ({target})")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# --- the checks on this repository ---------------------------------------------------------


@pytest.fixture(scope="module")
def layers() -> dict[str, int]:
    return read_layers(DESIGN)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(ROOT)


def test_every_module_has_a_layer(graph, layers):
    unnamed = sorted({layer_name(m) for m in graph} - set(layers))
    assert not unnamed, f"not in the ```layers block of docs/DESIGN.md: {unnamed}"


def test_imports_follow_the_layer_order(graph, layers):
    problems = layer_violations(graph, layers)
    assert not problems, "imports against docs/DESIGN.md's layers:\n" + "\n".join(problems)


def test_no_import_cycles(graph):
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_no_module_over_400_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / PACKAGE).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_path_outside_the_repository():
    files = [*(ROOT / PACKAGE).rglob("*.py"), *(ROOT / "notebooks").glob("*.ipynb")]
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}"
        for path in sorted(files)
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE_PATH.search(line)
    ]
    assert not hits, "paths outside the repository:\n" + "\n".join(hits)


def test_design_mentions_resolve_to_docs_design():
    assert DESIGN.is_file()
    hits = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}"
        for path in sorted((ROOT / PACKAGE).rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for match in re.finditer(r"(\S*)DESIGN\.md", line)
        if not match.group(1).endswith("docs/")
    ]
    assert not hits, "write the design document's path as docs/DESIGN.md:\n" + "\n".join(hits)


# --- the checker itself, on a small made-up package -----------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_finds_cycles_layer_breaks_and_own_init_imports(tmp_path):
    _write(
        tmp_path,
        {
            "kit/__init__.py": "",
            "kit/errors.py": "",
            "kit/cli.py": "from kit.low import cli\nimport kit.high.b\n",
            "kit/low/__init__.py": "from kit.low.a import x\n",
            "kit/low/a.py": (
                "from typing import TYPE_CHECKING\nfrom kit import errors\n"
                "if TYPE_CHECKING:\n    from kit.high import b\n"
                "def f():\n    from . import c\n"
            ),
            "kit/low/c.py": "from kit.low import a\n",
            "kit/low/cli.py": "import kit.low\n",
            "kit/high/__init__.py": "",
            "kit/high/b.py": "def g():\n    from ..low.a import f\n",
            "kit/low/d.py": "import kit.high.b\n",
        },
    )
    graph = import_graph(tmp_path, "kit")
    assert graph["kit.low.a"] == {"kit.errors", "kit.low.c"}  # TYPE_CHECKING import left out
    assert graph["kit.high.b"] == {"kit.low.a"}  # relative, inside a function
    assert graph["kit.cli"] == {"kit.low.cli", "kit.high.b"}
    assert cycles(graph) == [["kit.low.a", "kit.low.c"]]
    layers = {"__init__": 0, "errors": 0, "low": 1, "high": 2, "cli": 3}
    assert layer_violations(graph, layers) == [
        "kit.low.cli imports its own package's __init__ (kit.low)",
        "kit.low.d (layer 1) imports kit.high.b (layer 2, higher)",
    ]


def test_read_layers_rejects_a_name_in_two_layers(tmp_path):
    design = tmp_path / "DESIGN.md"
    design.write_text("```layers\n0: errors\n1: data errors\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="two layers"):
        read_layers(design)
    design.write_text("```layers\n0: errors cache\n1: data\n```\n", encoding="utf-8")
    assert read_layers(design) == {"errors": 0, "cache": 0, "data": 1}
