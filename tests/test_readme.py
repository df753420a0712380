"""The README's Python example runs as written (its first ```python block), in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _first_python_block() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "README.md has no python block"
    return blocks[0]


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path):
    script = tmp_path / "example.py"
    script.write_text(_first_python_block(), encoding="utf-8")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Result(family='two_layer'" in out.stdout
    assert (tmp_path / "runs" / "my_network" / "record.json").is_file()
