"""The README's Python examples run as written on the shipped model.

Every ```python block of README.md is one test (ids ``block-1``, ``block-2``, ...), run on its
own in a fresh namespace with a temporary working directory, so each block must stand alone (a
block may write files, e.g. a picture it then asks about). A block whose first line is
``# needs the released Show-o weights (not shipped)`` is skipped with that reason.
"""

import re
from pathlib import Path

import pytest

import showo

README = Path(__file__).parents[1] / "README.md"
NEEDS_RELEASED = "# needs the released Show-o weights (not shipped)"
MAX_LINES = 350


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line of the block's first code line in the README, body) of every ```python block, in order."""
    fence = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", flags=re.MULTILINE | re.DOTALL)
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in fence.finditer(text)]


BLOCKS = python_blocks(README.read_text())


def test_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines <= MAX_LINES, f"README.md has {lines} lines, at most {MAX_LINES}"


def test_readme_has_python_examples_that_run_on_the_shipped_model():
    assert showo.shipped_model_dir().is_dir()
    assert any(not body.startswith(NEEDS_RELEASED) for _, body in BLOCKS)


@pytest.mark.parametrize("line, body", BLOCKS, ids=[f"block-{i}" for i in range(1, len(BLOCKS) + 1)])
def test_readme_python_block_runs(line, body, tmp_path, monkeypatch):
    if body.startswith(NEEDS_RELEASED):
        pytest.skip(NEEDS_RELEASED.lstrip("# "))
    monkeypatch.chdir(tmp_path)
    # Padded so that a traceback names the README's own line numbers.
    code = compile("\n" * (line - 1) + body, str(README), "exec")
    exec(code, {"__name__": "__readme__"})
