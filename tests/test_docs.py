"""The documentation's code blocks, held against the code: every ```python block of README.md and docs/*.md
runs as written in a fresh process (the README's quickstart prints its Result and writes its record); every
command of a ```bash block is parsed by that command's own parser (its flags and values exist: a renamed flag
fails here), and every `make` target it names exists. The shell commands
are not run: most are paper-size runs of minutes to hours (their measured times are beside them). The
reference page names every key of a real record.json."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

import earlylin
from earlylin.cli import verify
from earlylin.cli.main import COMMANDS
from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `python -m <module>` forms → the module whose build_parser() parses the rest
MODULES = {"earlylin.verify": "earlylin.cli.verify", "earlylin.sweep": "earlylin.cli.sweep",
           "earlylin.figures": "earlylin.cli.figures", "earlylin.kernel": "earlylin.cli.kernel_bound",
           "paper_checks": "paper_checks.__main__"}
SHELL_BUILTINS = ("git ", "cd ", ". ", "ray ", "pip ", "export ", "OUT=", "bash ", "python benchmarks/")


def blocks(language: str) -> list[tuple[str, int, str]]:
    """(page, line, text) of every fenced block of ``language``."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M):
            found.append((page.relative_to(ROOT).as_posix(), text[: m.start()].count("\n") + 1, m.group(1)))
    return found


def shell_commands() -> list[tuple[str, str]]:
    """(where, command) of every command line of every bash block: continuations joined, comments dropped."""
    out = []
    for page, line, text in blocks("bash"):
        joined = re.sub(r"\\\n\s*", " ", text)
        for cmd in joined.splitlines():
            cmd = cmd.split(" #")[0].strip()
            if cmd and not cmd.startswith("#"):
                out.append((f"{page}:{line}", cmd))
    return out


def parser_of(argv: list[str]) -> tuple[str, list[str]]:
    """The module whose parser reads ``python -m …`` argv, and the flags it reads."""
    assert argv[:2] == ["python", "-m"], argv
    module, rest = argv[2], argv[3:]
    if module == "earlylin":
        if not rest or rest[0].startswith("-"):
            return "earlylin.cli.main", rest
        return COMMANDS[rest[0]][0], rest[1:]
    return MODULES[module], rest


def test_every_page_has_blocks_and_the_commands_are_found():
    assert len(blocks("python")) >= 3 and len(shell_commands()) >= 30
    assert parser_of(["python", "-m", "earlylin", "verify", "--quick"]) == ("earlylin.cli.verify", ["--quick"])


@pytest.mark.parametrize(("where", "command"), shell_commands(), ids=[w for w, _ in shell_commands()])
def test_shell_command_is_accepted_by_its_parser(where, command):
    argv = shlex.split(command)
    while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):  # VAR=value prefixes
        argv = argv[1:]
    if command.startswith("make"):
        targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), flags=re.M))
        asked = [a for a in argv[1:] if "=" not in a]
        assert set(asked) <= targets, f"{where}: {command}: no make target {set(asked) - targets}"
        return
    if command.startswith(SHELL_BUILTINS) or not argv or argv[:2] != ["python", "-m"]:
        return
    module, rest = parser_of(argv)
    if module == "earlylin.cli.main":
        assert rest in ([], ["--help"], ["--version"]), f"{where}: {command}"
        return
    parser = importlib.import_module(module).build_parser()
    try:
        parser.parse_args(rest)
    except SystemExit as exc:
        assert exc.code == 0, f"{where}: {command}: its parser refused it (exit {exc.code})"


@pytest.mark.slow
@pytest.mark.parametrize(("page", "line", "code"), blocks("python"), ids=[f"{p}:{n}" for p, n, _ in blocks("python")])
def test_python_block_runs(tmp_path, page, line, code):
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{page}:{line}\n{out.stderr[-3000:]}"
    if page == "README.md":  # the quickstart prints its Result and saves its record where it says
        assert "Result(family='two_layer'" in out.stdout
        assert (tmp_path / "runs" / "quickstart" / "record.json").is_file()


def test_reference_names_every_record_key(tmp_path):
    """Every key of a real record (top level, environment, a run, a seed's metrics, the summary) is named in
    docs/reference.md."""
    assert verify.main(["--d", "8", "--n", "40", "--n-test", "20", "--width", "8", "--steps", "3", "--no-cache",
                        "--no-plot", "--quiet", "--device", "cpu", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "record.json").read_text(encoding="utf-8"))
    run = record["runs"][0]
    keys = {*record, *record["environment"], *run, *run["per_seed"]["0"], *run["summary"]}
    reference = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    missing = sorted(k for k in keys if f"`{k}`" not in reference)
    assert not missing, f"docs/reference.md does not name {missing}"


# ---------------------------------------------------------------------------------------------- the public face
PUBLIC = [n for n in earlylin.__all__ if n != "__version__"]
FUNCTIONS = ("run", "run_network", "run_sweep", "get_activation", "gaussian_constants")


def _example(name: str) -> str | None:
    doc = inspect.getdoc(getattr(earlylin, name)) or ""
    m = re.search(r"^Example::\n\n((?:[ ]{4}.*\n?|\n)+)", doc, flags=re.M)
    return textwrap.dedent(m.group(1)) if m else None


def test_every_public_name_has_a_docstring_with_an_example():
    """Every public name but the error types shows an Example; every public function also says its Args
    and Returns (Google style, rendered by the reference page)."""
    errors = {"ConfigError", "DataError", "DivergenceError", "EarlylinError"}
    missing = [n for n in PUBLIC if n not in errors and _example(n) is None]
    assert not missing, f"no Example:: in the docstring of {missing}"
    for name in FUNCTIONS:
        doc = inspect.getdoc(getattr(earlylin, name))
        assert "Args:" in doc and "Returns:" in doc, name


@pytest.mark.slow
def test_docstring_examples_run(tmp_path):
    """The Example of every public name runs as written, each in a namespace of its own, in one fresh process."""
    examples = {n: e for n in PUBLIC if (e := _example(n)) is not None}
    script = "\n".join(f"exec(compile({code!r}, {name!r}, 'exec'), {{}})" for name, code in examples.items())
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
