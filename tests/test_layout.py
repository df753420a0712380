"""The package's shape: its import graph has no cycle, and modules stay small (one concern each)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "earlylin"
MAX_LINES = 450  # "about 400": a module past this has more than one concern


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the earlylin modules it imports (anywhere in its body, type-checking blocks included)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base
                                                                                                      else []))
                # `from pkg import sub` depends on the submodule; `from mod import name` on the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                # the deepest earlylin module the import names (a package's attribute resolves to the package)
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("earlylin"):
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_package_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 40 and "earlylin.experiments.pipeline" in graph
    assert find_cycle(graph) is None, " → ".join(find_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


# The package's layers, lowest first: a module imports only its own layer and those below it. The
# names are module prefixes (a wing and everything in it).
LAYERS = (
    ("earlylin.errors", "earlylin.version"),                       # the error type, value naming, checks
    ("earlylin.runtime", "earlylin.quadrature"),                   # seeds, fingerprints, records, devices
    ("earlylin.activations",),                                     # φ and its Gaussian constants
    ("earlylin.data", "earlylin.nets", "earlylin.linear", "earlylin.ntk", "earlylin.bound",
     "earlylin.training"),                                         # the science; losses, optimizers, batches
    ("earlylin.config",),                                          # run configurations
    ("earlylin.experiments",),                                     # one pipeline: train, compare, record
    ("earlylin.sweep",),                                           # grids of runs
    ("earlylin.studies",),                                         # the named studies of the paper
    ("earlylin.figures",),                                         # tables and plots of the studies
    ("earlylin.cli", "earlylin.api"),                              # the commands and the Python face
)
# entry points sit above every layer: the package's face and the `python -m` modules
ENTRY_POINTS = ("earlylin", "earlylin.__main__", "earlylin.verify", "earlylin.kernel", "earlylin.sweep.__main__",
                "earlylin.figures.__main__")
MAX_TOP_MODULES = 12


def layer_of(module: str) -> int | None:
    for rank, group in enumerate(LAYERS):
        if any(module == g or module.startswith(g + ".") for g in group):
            return rank
    return None


def test_data_flows_one_way():
    """Lower layers never import higher ones (LAYERS): no model, data or linear module imports a config,
    the pipeline, a study, a figure or a command; every module has a layer."""
    graph = import_graph()
    for mod, deps in graph.items():
        if mod in ENTRY_POINTS:
            continue
        rank = layer_of(mod)
        assert rank is not None, f"{mod} is in no layer of LAYERS"
        bad = sorted(d for d in deps if d not in ENTRY_POINTS and (layer_of(d) or 0) > rank)
        assert not bad, f"{mod} (layer {rank}) imports higher layers: {bad}"


def test_the_layer_check_sees_an_upward_import():
    assert layer_of("earlylin.nets.two_layer") < layer_of("earlylin.config") < layer_of("earlylin.cli.verify")
    assert layer_of("earlylin.runtime.records") < layer_of("earlylin.activations")
    assert layer_of("earlylin.somewhere_new") is None


def test_few_modules_at_the_top():
    """At most 12 modules directly in earlylin/: the rest live in the wings (runtime, data, nets, linear, ntk,
    bound, experiments, sweep, studies, figures, cli)."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top


def test_modules_stay_small():
    sizes = {p.relative_to(PACKAGE.parent).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in PACKAGE.rglob("*.py")}
    big = {k: v for k, v in sizes.items() if v > MAX_LINES}
    assert not big, big
