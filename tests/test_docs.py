"""Every ```python and ```bash block of README.md and docs/*.md runs here, so a wrong example fails CI.

How a file runs: its blocks run in order, in a fresh temporary folder (the working directory),
offline (``HF_HUB_OFFLINE=1`` ...), with this checkout on ``PYTHONPATH``. Python blocks share one
namespace per file (a later block uses an earlier one's variables); shell blocks (``bash``,
``sh``, ``shell``, ``console``) run with ``bash -e -o pipefail``, where ``hf-unlearn`` is
``python -m hf_unlearn.cli``. Both see the files the earlier blocks wrote. The folder starts with
``recipes/`` (a copy of the repository's) and ``forget_ids.txt`` / ``ids.txt``: five ids of the
``synthetic`` training split, one a canary.

Each block is one test, named ``FILE:LINE`` of its opening fence (``-rs`` lists the skipped ones
with their reasons). Selecting a later block alone runs the earlier blocks of its file first; once
a block fails, the later blocks of its file fail as well, naming it.

Markers: HTML comments (invisible on GitHub) on the lines right before a block's opening fence:

- ``<!-- docs-test: skip REASON -->``: the block is not run; the test reports it as skipped
  with the reason (needs the Hub, a GPU, the IMDB files, several processes, an install ...).
  A reason is required.
- ``<!-- docs-test: sub OLD => NEW -->``: replace the literal text OLD by NEW in this block
  before it runs (a tiny model or the synthetic data for a Hub one, fewer epochs, ...). Several
  ``sub`` lines apply in order (each must match). NEW may be empty. In shell blocks, ``: `` before a command turns
  it into a no-op while keeping its continuation lines.
- ``<!-- docs-test: sub-all OLD => NEW -->``: the same, after the ``sub`` lines, for the next block
  and every later block of the file, where OLD occurs.
- ``<!-- docs-test: before COMMAND -->``: run the shell COMMAND (same environment) before this
  block: to create what the prose assumes exists, e.g. a run folder.

Keep substitutions to the model, the data and the sizes: the command itself must stay what the
reader copies.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console"}
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(\S+)\s*(.*?)\s*-->\s*$")
MARKER_KINDS = ("skip", "sub", "sub-all", "before")
FENCE = re.compile(r"^```(\w*)\s*$")
FORGET_IDS = [
    "synthetic-train-00003",
    "synthetic-train-00010",
    "synthetic-train-00100",
    "synthetic-train-00200",
    "canary-0001",
]


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None = None
    subs: list[tuple[str, str]] = field(default_factory=list)
    sub_all: list[tuple[str, str]] = field(default_factory=list)
    before: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{_shown(self.path)}:{self.line}"

    def source(self) -> str:
        code = self.code
        for old, new in self.subs:
            if old not in code:
                raise AssertionError(f"{self.where}: `sub {old} => {new}` does not match the block")
            code = code.replace(old, new)
        for old, new in self.sub_all:  # file-wide: may not occur in every block
            code = code.replace(old, new)
        return code


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def _parse_sub(arg: str, where: str) -> tuple[str, str]:
    if " => " not in arg and not arg.endswith(" =>"):
        raise AssertionError(f"{where}: a sub marker is `sub OLD => NEW`, got {arg!r}")
    old, _, new = arg.partition(" =>")
    return old, new[1:] if new.startswith(" ") else new


def parse_blocks(path: Path) -> list[Block]:
    """The python and shell blocks of a markdown file, with their markers (markers must be used)."""
    lines = path.read_text().splitlines()
    blocks, pending, sticky, i = [], [], [], 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        fence = FENCE.match(lines[i])
        if m:
            where = f"{_shown(path)}:{i + 1}"
            kind, arg = m.groups()
            if kind not in MARKER_KINDS:
                raise AssertionError(f"{where}: unknown docs-test marker {kind!r}; known: {MARKER_KINDS}")
            if kind == "skip" and not arg:
                raise AssertionError(f"{where}: `docs-test: skip` needs a reason")
            if kind == "sub-all":
                sticky.append(_parse_sub(arg, where))
            else:
                pending.append((kind, arg, where))
            i += 1
            continue
        if fence:
            start, lang, body = i, fence.group(1).lower(), []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            block = Block(path, start + 1, lang, "\n".join(body) + "\n", sub_all=list(sticky))
            for kind, arg, where in pending:
                if kind == "skip":
                    block.skip = arg
                elif kind == "sub":
                    block.subs.append(_parse_sub(arg, where))
                else:
                    block.before.append(arg)
            if lang == "python" or lang in SHELL_LANGS:
                blocks.append(block)
            elif pending:
                raise AssertionError(f"{_shown(path)}:{start + 1}: docs-test marker on a {lang or 'plain'} block")
            pending = []
        elif lines[i].strip() and pending:
            raise AssertionError(f"{pending[0][2]}: a docs-test marker must sit right before a code fence")
        i += 1
    return blocks


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        OMP_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_EVALUATE_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def run_shell(code: str, where: str, cwd: Path) -> None:
    prelude = f'hf-unlearn() {{ "{sys.executable}" -m hf_unlearn.cli "$@"; }}\nset -e -o pipefail\n'
    proc = subprocess.run(
        ["bash", "-c", prelude + code], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        tail = (proc.stdout[-3000:] + "\n" + proc.stderr[-6000:]).strip()
        raise AssertionError(
            f"{where}: shell block exited {proc.returncode}\n--- block ---\n{code}\n--- output ---\n{tail}"
        )


def run_python(code: str, where: str, namespace: dict) -> None:
    try:
        exec(compile(code, where, "exec"), namespace)
    except Exception as e:
        raise AssertionError(f"{where}: python block raised {type(e).__name__}: {e}\n--- block ---\n{code}") from e


def _prepare_folder(folder: Path) -> None:
    shutil.copytree(ROOT / "recipes", folder / "recipes")
    for name in ("forget_ids.txt", "ids.txt"):
        (folder / name).write_text("\n".join(FORGET_IDS) + "\n")


@dataclass
class _FileRun:
    """One markdown file's run: its folder, its Python namespace, how far it got."""

    folder: Path
    namespace: dict = field(default_factory=lambda: {"__name__": "__docs__"})
    done: int = 0  # blocks [0, done) have been handled
    failed: str | None = None


_RUNS: dict[Path, _FileRun] = {}


def _run_block(block: Block, state: _FileRun) -> None:
    for command in block.before:
        run_shell(command, f"{block.where} (before)", state.folder)
    code = block.source()
    if block.lang == "python":
        run_python(code, block.where, state.namespace)
    else:
        run_shell(code, block.where, state.folder)


FILE_BLOCKS = {p: parse_blocks(p) for p in DOC_FILES}  # parsed once, at collection
ALL_BLOCKS = [(b, k) for p in DOC_FILES for k, b in enumerate(FILE_BLOCKS[p])]


@pytest.fixture(scope="module", autouse=True)
def _forget_dynamic_modules():
    """Python blocks run in this process: drop the ``evaluate`` modules they imported, and their cache
    folder from ``sys.path``, so a later test that points ``evaluate`` at another cache imports afresh."""
    modules, path = set(sys.modules), list(sys.path)
    yield
    for name in set(sys.modules) - modules:
        if name.split(".")[0] in ("evaluate_modules", "datasets_modules"):
            del sys.modules[name]
    sys.path[:] = path + [p for p in sys.path if p not in path and "modules" not in Path(p).name]
    importlib.invalidate_caches()


@pytest.fixture
def docs_env(monkeypatch):
    for key, value in _env().items():
        if key != "PYTHONPATH":
            monkeypatch.setenv(key, value)


@pytest.mark.parametrize(("block", "index"), ALL_BLOCKS, ids=[b.where for b, _ in ALL_BLOCKS])
def test_doc_block(block: Block, index: int, tmp_path_factory, monkeypatch, docs_env):
    """Run one block, after the earlier blocks of its file (run here if they were not selected)."""
    if block.skip:
        pytest.skip(block.skip)
    blocks = FILE_BLOCKS[block.path]
    state = _RUNS.get(block.path)
    if state is None:
        folder = tmp_path_factory.mktemp(block.path.stem.lower())
        _prepare_folder(folder)
        state = _RUNS[block.path] = _FileRun(folder)
    monkeypatch.chdir(state.folder)
    while state.done <= index:
        if state.failed:
            pytest.fail(f"an earlier block of this file failed: {state.failed}")
        current = blocks[state.done]
        state.done += 1
        if current.skip:
            continue
        try:
            _run_block(current, state)
        except AssertionError:
            state.failed = current.where
            raise


def test_every_block_runs_or_says_why():
    """Every python/shell block of the docs is collected; a skipped one gives its reason."""
    counts = {p.name: len(parse_blocks(p)) for p in DOC_FILES}
    assert counts["README.md"] > 5, counts
    skipped = [b for b, _ in ALL_BLOCKS if b.skip]
    assert all(b.skip.strip() for b in skipped)
    assert len(skipped) < len(ALL_BLOCKS) / 2, [b.where for b in skipped]  # most examples really run


def test_parser_rejects_bad_markers(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("<!-- docs-test: skip needs the Hub -->\nsome prose\n```python\nx = 1\n```\n")
    with pytest.raises(AssertionError, match="right before a code fence"):
        parse_blocks(md)
    md.write_text("<!-- docs-test: skip -->\n```python\nx = 1\n```\n")
    with pytest.raises(AssertionError, match="needs a reason"):
        parse_blocks(md)
    md.write_text("<!-- docs-test: skipp typo -->\n```python\nx = 1\n```\n")
    with pytest.raises(AssertionError, match="unknown docs-test marker"):
        parse_blocks(md)
    md.write_text("<!-- docs-test: sub a => b -->\n<!-- docs-test: sub-all x =>  -->\n```bash\na x\n```\n")
    (block,) = parse_blocks(md)
    assert block.source() == "b \n"
    md.write_text("<!-- docs-test: sub nowhere => b -->\n```bash\na x\n```\n")
    (block,) = parse_blocks(md)
    with pytest.raises(AssertionError, match="does not match"):
        block.source()


def test_a_wrong_example_fails(tmp_path):
    """The runner fails on a python block that raises and on a shell block that exits non-zero."""
    with pytest.raises(AssertionError, match="python block raised NameError"):
        run_python("print(undefined_name)\n", "x.md:1", {})
    with pytest.raises(AssertionError, match="shell block exited 3"):
        run_shell("true\nexit 3\necho never\n", "x.md:1", tmp_path)
    with pytest.raises(AssertionError, match="shell block exited 1"):
        run_shell("false\necho not reached\n", "x.md:1", tmp_path)  # set -e: the first failure stops it
