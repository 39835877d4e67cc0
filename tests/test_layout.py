"""The architecture, checked: ``nmfdnn/method/`` holds the paper's math and imports nothing of the
package beyond the backend seam, errors and timers; no module imports another that imports it back
(module-level or inside functions); the tools are used by the CLI only, the maintainer scripts by
nobody; and the house budget: ``outputs/`` within 150 tracked files, no Makefile line over 100
columns, no repeated code (``duplicates``, where that tool is installed)."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "nmfdnn"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every nmfdnn module ``path`` imports, anywhere in the file (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("nmfdnn"):
                for alias in node.names:  # `from . import x` may name a module
                    sub = f"{mod}.{alias.name}"
                    out.add(sub if (PKG.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                            or (PKG.parent / sub.replace(".", "/")).is_dir() else mod)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("nmfdnn")}
    return out - {name}


GRAPH = {module_name(p): imports(p) for p in PKG.rglob("*.py")}


def test_method_imports_only_the_seam():
    allowed = {"nmfdnn.backend", "nmfdnn.errors", "nmfdnn.timers"}
    for mod, deps in GRAPH.items():
        if mod.startswith("nmfdnn.method"):
            outside = {d for d in deps if not d.startswith("nmfdnn.method")} - allowed
            assert not outside, f"{mod} imports {outside}"


def test_method_never_sees_a_config_node():
    """The math takes plain settings (:class:`nmfdnn.method.settings.NMFSettings`): no module of
    ``method/`` imports omegaconf or hydra, and none reads a setting through ``.get(...)``."""
    for path in (PKG / "method").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            assert not [n for n in names if n.split(".")[0] in ("omegaconf", "hydra")], f"{path.name} imports {names}"
        assert "sol.get(" not in path.read_text(), path.name


def test_method_package_documents_every_function_it_maps():
    """The table in nmfdnn/method/__init__.py names functions that exist."""
    import importlib
    import re

    import nmfdnn.method as m

    names = re.findall(r":func:`(\w+)\.(\w+)`", m.__doc__)
    assert len(names) >= 15
    for module, func in names:
        assert hasattr(importlib.import_module(f"nmfdnn.method.{module}"), func), f"{module}.{func}"


def test_no_import_cycles():
    seen, stack = set(), []

    def visit(mod):
        if mod in stack:
            pytest.fail("import cycle: " + " -> ".join(stack[stack.index(mod):] + [mod]))
        if mod in seen or mod not in GRAPH:
            return
        stack.append(mod)
        for dep in sorted(GRAPH[mod]):
            visit(dep)
        stack.pop()
        seen.add(mod)

    for mod in sorted(GRAPH):
        visit(mod)


def test_tools_are_used_by_the_cli_only():
    for mod, deps in GRAPH.items():
        if not mod.startswith(("nmfdnn.tools", "nmfdnn.cli", "nmfdnn.maint")):
            assert not {d for d in deps if d.startswith("nmfdnn.tools")}, mod


def test_maintainer_scripts_are_used_by_nobody():
    """``nmfdnn/maint/`` (the Makefile's scripts) may use the package; the package never uses them."""
    for mod, deps in GRAPH.items():
        if not mod.startswith("nmfdnn.maint"):
            assert not {d for d in deps if d.startswith("nmfdnn.maint")}, mod


REPO = PKG.parent
OUTPUTS_BUDGET = 150  # tracked files under outputs/: fold per-run files into a study's runs.jsonl / report
MAKEFILE_COLUMNS = 100


def test_outputs_stay_within_their_budget():
    if not (REPO / ".git").exists() or not shutil.which("git"):
        pytest.skip("not a git checkout: no tracked files to count")
    files = subprocess.run(["git", "ls-files", "outputs"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    assert len(files) <= OUTPUTS_BUDGET, f"outputs/ tracks {len(files)} files (budget {OUTPUTS_BUDGET})"


def test_no_makefile_line_is_wider_than_100_columns():
    wide = [(i, len(line)) for i, line in enumerate((REPO / "Makefile").read_text().splitlines(), 1)
            if len(line) > MAKEFILE_COLUMNS]  # characters, a tab counting one
    assert not wide, f"Makefile lines over {MAKEFILE_COLUMNS} columns (line, length): {wide}"


def test_no_repeated_code():
    exe = shutil.which("duplicates")
    if exe is None:
        pytest.skip("the duplicates tool is not installed on this machine")
    out = subprocess.run([exe, "--repo", str(REPO)], capture_output=True, text=True, timeout=120).stdout
    rows = [line for line in out.splitlines() if line.startswith("D")]
    assert not rows, "repeated code:\n" + "\n".join(rows)
