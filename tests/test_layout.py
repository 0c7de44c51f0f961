"""The package layering (README: Layout): imports go downward only and never in a cycle, the
light command-line tools start without torch, and the code passes the lint (ruff)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> the packages of ours it may import (lazily inside a function too): each layer
# sees only the ones below it.
ALLOWED = {
    "engine": set(),
    "problems": {"engine"},
    "strategies": {"engine"},
    "recipes": {"engine", "problems", "strategies"},
    "trainers": {"engine", "problems", "strategies", "recipes"},
    "evals": {"engine", "problems", "strategies", "recipes", "trainers"},
}


def module_name(file: Path) -> str:
    return ".".join(file.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """Each of our modules -> the modules of ours it imports, wherever the import statement is."""
    files = {module_name(f): f for package in ALLOWED for f in (ROOT / package).rglob("*.py")}
    graph = {}
    for name, file in files.items():
        deps = set()
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                deps.add(node.module)
                deps.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from package import module`
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def test_imports_go_downward_only():
    upward = [f"{m} imports {d}" for m, deps in import_graph().items() for d in sorted(deps)
              if d.split(".")[0] != m.split(".")[0] and d.split(".")[0] not in ALLOWED[m.split(".")[0]]]
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycles.append(" -> ".join(path[path.index(dep):] + [module, dep]) if dep in path else f"{module} -> {dep}")
            elif dep not in state:
                visit(dep, path + [module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_layering_test_sees_a_violation():
    """The graph is real: it holds known edges (a lazy one included), so an empty list above means something."""
    graph = import_graph()
    assert "engine.encoding" in graph["engine.policy"]
    assert "problems.oracle" in graph["evals.run"]  # imported inside load_models
    assert "trainers.greedy" in graph["evals.greedy"]


def test_light_tools_start_without_torch():
    code = (
        "import runpy, sys\n"
        "for module in ('evals.merge', 'evals.run'):\n"
        "    sys.argv = [module, '--help']\n"
        "    try:\n"
        "        runpy.run_module(module, run_name='__main__')\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm') if m in sys.modules]\n"
        "assert not heavy, f'imported: {heavy}'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--strategy" in run.stdout and "--output" in run.stdout


def test_lint():
    run = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-1000:]


def test_an_eval_command_never_trains(tmp_path):
    """A missing policy is a clear error that names the training command, not a training run."""
    from evals import greedy

    with pytest.raises(SystemExit, match=r"policy directory not found: .*python -m trainers.step_sft --world arith --output_dir"):
        greedy.main(["--policy", str(tmp_path / "missing")])
    assert not (tmp_path / "missing").exists()
