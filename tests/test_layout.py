"""The repository's layout, read from the source with ast (nothing of the package is imported):
no import circles among mind_engine's modules (the top-level kernels/ counted as
mind_engine.kernels, as setup.py ships it) nor among the bench scripts (imported as bench.*), the engine importing only what lies below it and the
public face above it, no function over 80 lines, and the Triton kernels in the top-level kernels/."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "mind_engine"
# Folders of source that ship as (sub)packages: the folder -> the package name it is imported as.
PACKAGE_FOLDERS = {ROOT / "mind_engine": "mind_engine", ROOT / "kernels": "mind_engine.kernels"}
EXTENSIONS = {"mind_engine._C"}  # compiled modules (setup.py's ext_modules): leaves of the graph
MAX_FUNCTION_LINES = 80
FUNCTION_LENGTH_FOLDERS = ("mind_engine", "bench", "export", "kernels")
TRITON_KERNELS = ("input_backward_match.py", "match_reduce.py", "window_ops.py")

# What the engine may import: itself and what lies below it. The public face (api), the argument
# rules (checks), the weights and the backends stand above it and read its facts.
BELOW_THE_ENGINE = ("mind_engine.engine", "mind_engine.ops", "mind_engine.kernels", "mind_engine._C",
                    "mind_engine.model")


# The bench scripts import each other's shared parts as ``bench.<module>`` (the repository root on the path).
BENCH_FOLDERS = {ROOT / "bench": "bench"}


def module_files(folders: dict[Path, str] = PACKAGE_FOLDERS) -> dict[str, Path]:
    """Every module under ``folders`` (folder -> the package it is imported as), by its dotted name."""
    modules = {}
    for folder, package in folders.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute name of what ``from <node.module> import ...`` reads, relative levels resolved."""
    if node.level == 0:
        return node.module
    package = module if _is_package(path) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _known(name: str, known: set[str]) -> str | None:
    """``name``, or the longest of its dotted prefixes that is a module of the package."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``module`` imports, anywhere in it (a function's late import too):
    ``from . import x`` names the submodule x where there is one, else the package itself."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(_known(alias.name, known) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, path, node)
            for alias in node.names:
                found.add(_known(f"{base}.{alias.name}", known) or _known(base, known))
    found.discard(None)
    found.discard(module)
    return found


def import_graph(folders: dict[Path, str] = PACKAGE_FOLDERS) -> dict[str, set[str]]:
    """Module -> the modules it imports. Importing ``a.b.c`` also runs the package ``a.b`` first, so
    each import of a module inside a subpackage counts as an import of that subpackage too (not of
    the top package, which Python has already started when anything inside it is imported)."""
    files = module_files(folders)
    known = set(files) | EXTENSIONS
    graph = {}
    for m, p in files.items():
        deps = imports_of(m, p, known)
        for d in list(deps):
            parent = d.rpartition(".")[0]
            while parent.count(".") >= 1:
                if parent in files and not m.startswith(parent + "."):
                    deps.add(parent)
                parent = parent.rpartition(".")[0]
        graph[m] = deps
    return graph


def _within(module: str, names) -> bool:
    return any(module == name or module.startswith(name + ".") for name in names)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_resolves_relative_imports():
    graph = import_graph()
    assert "mind_engine.ops.dispatch" in graph["mind_engine.ops.window_ops"]  # from .dispatch import ...
    assert "mind_engine.ops._torch_impl" in graph["mind_engine.ops.window_ops"]  # from . import _torch_impl
    assert "mind_engine.kernels.window_ops" in graph["mind_engine.ops.window_ops"]  # from ..kernels.window_ops
    assert "mind_engine.ops" in graph["mind_engine.engine.windowed"]  # from ..ops import ...: the package
    assert "mind_engine.ops" in graph["mind_engine.engine.windows"]  # from ..ops._torch_impl: runs ops/__init__
    assert "mind_engine._C" in graph["mind_engine.ops.dispatch"]  # from .. import _C: the extension


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_no_import_circles_among_the_bench_scripts():
    """The bench scripts share what they share through a module below them (``bench/testbed.py``:
    the machine's name, the test pair, match agreement), not by importing each other in a circle."""
    graph = import_graph(BENCH_FOLDERS)
    assert "bench.c2f_profile" in graph["bench.latency"]  # late imports count: the graph sees the edges
    assert "bench.testbed" in graph["bench.c2f_profile"] and "bench.testbed" in graph["bench.precision"]
    assert circles(graph) == []
    assert circles({"bench.a": {"bench.b"}, "bench.b": {"bench.a"}}) == [["bench.a", "bench.b"]]  # it can fail


def test_the_engine_imports_only_what_lies_below_it():
    graph = import_graph()
    upward = {m: sorted(d for d in deps if not _within(d, BELOW_THE_ENGINE))
              for m, deps in graph.items() if _within(m, ["mind_engine.engine"])}
    assert {m: d for m, d in upward.items() if d} == {}


def test_the_public_face_stands_above_the_engine():
    graph = import_graph()
    assert "mind_engine.engine.tiers" in graph["mind_engine.api"]
    assert not any("mind_engine.api" in graph[m] for m in graph if _within(m, ["mind_engine.engine", "mind_engine.checks",
                                                                             "mind_engine.backends"]))


def test_no_function_is_over_80_lines():
    long = []
    for folder in FUNCTION_LENGTH_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def _triton_jit_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
            and any(ast.unparse(d).startswith("triton.jit") for d in node.decorator_list)]


def test_the_triton_kernels_are_in_the_top_level_kernels_folder():
    kernels = ROOT / "kernels"
    assert (kernels / "__init__.py").is_file()
    for name in TRITON_KERNELS:
        assert _triton_jit_functions(kernels / name), f"kernels/{name} holds no @triton.jit kernel"
    in_package = [str(p.relative_to(ROOT)) for p in (ROOT / "mind_engine").rglob("*.py") if _triton_jit_functions(p)]
    assert in_package == []
    assert (ROOT / "mind_engine" / "ops" / "_torch_impl.py").is_file()  # the references stay beside the ops


def test_setup_ships_kernels_as_mind_engine_kernels():
    setup = ast.parse((ROOT / "setup.py").read_text())
    package_dirs = [ast.literal_eval(node.value) for node in ast.walk(setup)
                    if isinstance(node, ast.keyword) and node.arg == "package_dir"]
    assert package_dirs == [{"mind_engine.kernels": "kernels"}]
