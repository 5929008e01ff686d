"""The layout holds: modules stay small, and the layers import only downwards.

Layers, bottom up: the vocabulary and settings at ``pipeline/`` (config, errors, domains, params,
request, rows, ...), ``sources/``, ``stages/`` (plain functions over a Source), ``engine/`` (jobs
in Redis and the steps around the stages), then the edges: ``http_api/``, ``cli/``, ``tools/``,
``demo/``, ``bench/`` and ``actors``.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Lines of code a module may hold (blank lines, comments and docstrings not counted).
MAX_CODE_LINES = 400
MODULES = sorted(p for d in ("pipeline", "http_api") for p in (ROOT / d).rglob("*.py"))
#: What each package may not import.
FORBIDDEN = {
    "pipeline/sources": ("pipeline.engine", "pipeline.stages", "http_api", "pipeline.cli"),
    "pipeline/stages": ("pipeline.engine", "http_api", "pipeline.cli", "pipeline.tools"),
    "pipeline/engine": ("http_api", "pipeline.cli", "pipeline.tools", "pipeline.bench"),
    "pipeline/stages/msd/folding.py": ("pipeline.stages.msd.result", "pipeline.stages.msd.detail"),
}


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    source = path.read_text(encoding="utf-8")
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip and token.type != tokenize.ENDMARKER:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_the_size_limit(path: Path) -> None:
    assert code_lines(path) <= MAX_CODE_LINES


def test_the_counter_counts_code_only(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    text = '"""Doc\nstring."""\n\n# a comment\nx = 1  # why\n\n\ndef f():\n    """D."""\n'
    sample.write_text(text + "    return x\n")
    assert code_lines(sample) == 3


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_layers_import_only_downwards(path: Path) -> None:
    where = str(path.relative_to(ROOT))
    names = imported(path)
    for scope, forbidden in FORBIDDEN.items():
        if where == scope or where.startswith(scope + "/"):
            wrong = sorted(n for n in names if n.startswith(forbidden))
            assert not wrong, f"{where} imports {wrong}"
