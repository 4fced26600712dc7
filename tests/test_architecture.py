"""The package's shape: imports flow one way, files and functions stay small, one atomic writer.

The layer order below is the map of ``docs/architecture.md``: a module may import hf_unlearn
modules of its own package or of a package listed BEFORE its own, never after. Every import is
walked, also the ones inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "hf_unlearn"

# Lowest first. The top-level package (``hf_unlearn/__init__.py``: the version) may be imported by all.
LAYERS = (
    "artifacts",
    "console",
    "data",
    "requests",
    "models",
    "cards",
    "training",
    "memorization",
    "methods",
    "s3t",
    "evaluation",
    "metrics",
    "hub",
    "runs",
    "commands",
    "cli",
)
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_FUNCTION_MARK = "long on purpose:"  # a comment in the function's first lines that says why


def _top_package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "hf_unlearn":
        return None
    return parts[1] if len(parts) > 1 and not parts[1].startswith("__") else ""


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """Absolute names of every hf_unlearn module imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    own = _module_name(path).split(".")
    package = own if path.name == "__init__.py" else own[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x: x may be a module of that package
                    found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
                    continue
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return [(line, name) for line, name in found if name.startswith("hf_unlearn")]


def _python_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_package_has_a_layer():
    packages = {_top_package(_module_name(p)) for p in _python_files()}
    packages.discard("")
    assert packages <= set(LAYERS), f"packages without a layer in LAYERS: {sorted(packages - set(LAYERS))}"


def test_imports_flow_one_way():
    rank = {name: i for i, name in enumerate(LAYERS)}
    wrong = []
    for path in _python_files():
        mine = _top_package(_module_name(path))
        if not mine:
            continue
        for line, target in _imported_modules(path):
            theirs = _top_package(target)
            if theirs in ("", None) or theirs == mine:
                continue
            if rank[theirs] > rank[mine]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({mine}) imports {target} ({theirs})")
    assert not wrong, "imports against the flow:\n" + "\n".join(wrong)


def test_the_import_walk_sees_a_violation(tmp_path):
    """The walk itself: a relative import inside a function is resolved and caught."""
    fake = PACKAGE / "data" / "_probe_for_test.py"
    try:
        fake.write_text("def f():\n    from ..evaluation import report\n")
        names = [name for _, name in _imported_modules(fake)]
    finally:
        fake.unlink()
    assert names == ["hf_unlearn.evaluation"]


def test_files_are_small():
    big = [
        f"{p.relative_to(PACKAGE.parent)} ({n} lines)"
        for p in _python_files()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    ]
    assert not big, f"files over {MAX_FILE_LINES} lines: {big}"


def test_functions_are_short_or_say_why():
    long = []
    for path in _python_files():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                head = "\n".join(lines[node.lineno - 1 : node.lineno + 12])
                if length > MAX_FUNCTION_LINES and LONG_FUNCTION_MARK not in head:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, (
        f"functions over {MAX_FUNCTION_LINES} lines without a '# {LONG_FUNCTION_MARK} ...' comment: {long}"
    )


def test_one_atomic_writer():
    """Only the artifacts package renames files into place."""
    others = []
    for path in _python_files():
        if path.parent == PACKAGE / "artifacts":
            continue
        text = path.read_text()
        for needle in ("os.replace(", "os.rename(", ".replace(tmp", "tmp.replace(", "mkstemp("):
            if needle in text:
                others.append(f"{path.relative_to(PACKAGE.parent)}: {needle}")
    assert not others, f"atomic writes outside hf_unlearn/artifacts/: {others}"
