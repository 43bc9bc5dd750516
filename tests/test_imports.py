"""The import structure: no import cycle between modules (imports inside functions count: a cycle
hidden in a function is still a cycle), the rooms of ``cases/`` depend on each other in one
direction only, the top-level packages follow DESIGN.md (``web → cases → parsers → forms``), no
module imports another module's ``_private`` name, and every module imports on its own in a
fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("cases", "parsers", "forms", "web")
TOP_MODULES = ("app", "config")

# What each top-level package may import (besides itself and the standard/third-party libraries).
ALLOWED_PACKAGES = {
    "forms": set(),
    "parsers": {"forms"},
    "cases": {"forms", "parsers"},
    "web": {"forms", "parsers", "cases"},
    "app": {"config", "web"},
    "config": set(),
}
# The rooms of cases/, floor by floor: a room may import only the rooms listed for it.
CASES_ROOMS = {
    "store": set(),
    "engine": {"store"},
    "documents": {"store", "engine"},
    "ledgers": {"store", "engine"},
    "handover": {"store", "engine", "documents"},
    "returns": {"store", "engine", "documents", "handover"},
    "accounts": {"store", "engine"},
    "dossier": {"store", "engine", "documents", "ledgers", "returns"},
    "notify": {"store", "engine", "ledgers", "returns", "accounts"},
    "demo": {"store", "engine", "documents", "handover", "ledgers", "returns", "accounts", "notify"},
}
# Entry points that read the configuration themselves (what a command line or worker starts from).
CONFIG_READERS = {"app", "cases.store.jobs", "cases.demo", "cases.engine.casework", "cases.notify.scheduler",
                  "migrations.env"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the service (tests, bench, scripts and migrations left out)."""
    found = {m: ROOT / f"{m}.py" for m in TOP_MODULES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in the file, at any depth,
    except those under ``if TYPE_CHECKING``. ``from pkg import mod`` counts as importing ``pkg.mod``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if _type_checking_only(node, parents):
                continue
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if _type_checking_only(node, parents):
                continue
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            plain = []
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    yield f"{base}.{alias.name}", [], node.lineno
                else:
                    plain.append(alias.name)
            if plain:
                yield base, plain, node.lineno


def _graph() -> tuple[dict[str, Path], dict[str, set[str]], list[tuple[str, str, list[str], int]]]:
    mods = modules()
    known = set(mods)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    found = []
    for name, path in mods.items():
        for target, names, line in imports_of(name, path, known):
            if target in known and target != name:
                edges[name].add(target)
                found.append((name, target, names, line))
    return mods, edges, found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
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
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    _mods, edges, _found = _graph()
    assert _cycles(edges) == []


def test_the_graph_sees_imports_inside_functions():
    """The check itself: a cycle made by an import inside a function is found."""
    edges = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert _cycles(edges) == [["a", "b"]]
    src = "def f():\n    from cases.store import models\n"
    tree_imports = list(imports_of("x", _write(src), {"cases.store.models"}))
    assert tree_imports == [("cases.store.models", [], 2)]


def _write(text: str) -> Path:
    import tempfile

    fd = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False, encoding="utf-8")
    with fd:
        fd.write(text)
    return Path(fd.name)


def _top(name: str) -> str:
    return name.split(".")[0]


def _room(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "cases" and len(parts) > 1 else None


def test_packages_depend_in_one_direction():
    _mods, _edges, found = _graph()
    wrong = sorted({f"{src} -> {dst}" for src, dst, _names, _line in found
                    if _top(dst) != _top(src) and _top(dst) not in ALLOWED_PACKAGES[_top(src)]
                    and not (dst == "config" and src in CONFIG_READERS)})
    assert wrong == []


def test_rooms_of_cases_depend_in_one_direction():
    _mods, _edges, found = _graph()
    wrong = sorted({f"{src} -> {dst}" for src, dst, _names, _line in found
                    if _room(src) and _room(dst) and _room(src) != _room(dst)
                    and _room(dst) not in CASES_ROOMS[_room(src)]})
    assert wrong == []


def test_nobody_imports_a_private_name():
    _mods, _edges, found = _graph()
    wrong = sorted(f"{src}:{line} takes {n} from {dst}" for src, dst, names, line in found
                   for n in names if n.startswith("_") and not n.startswith("__"))
    assert wrong == []


def test_settings_are_passed_in():
    """Only entry points read ``config``; everything else gets its settings as arguments."""
    _mods, _edges, found = _graph()
    mods = modules()
    readers = sorted({src for src, dst, _names, _line in found if dst == "config"} - CONFIG_READERS)
    assert readers == [], f"read config.Config instead of taking settings: {readers}"
    assert "config" in mods


@pytest.mark.slow
def test_every_module_imports_alone():
    """Each module in a fresh interpreter: an order-dependent import (a cycle that only works when
    another module happened to be imported first) fails here."""
    names = sorted(modules())

    def one(name: str) -> tuple[str, int, str]:
        r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
        return name, r.returncode, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""

    with ThreadPoolExecutor(2) as pool:
        failed = [f"{n}: {err}" for n, rc, err in pool.map(one, names) if rc != 0]
    assert failed == []


def test_entry_points_read_config_only_where_they_start():
    """Even an entry point reads ``config`` only in its ``if __name__ == "__main__":`` block (or at
    module level, as the app factory does), never inside a function: a function gets its settings
    passed in, so a library call never builds state from the environment behind the caller's back."""
    mods = modules()
    wrong = []
    for name in sorted(CONFIG_READERS & set(mods)):
        for fn in ast.walk(ast.parse(mods[name].read_text(encoding="utf-8"))):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if (isinstance(node, ast.ImportFrom) and node.module == "config") or (
                            isinstance(node, ast.Import) and any(a.name == "config" for a in node.names)):
                        wrong.append(f"{name}:{node.lineno} in {fn.name}()")
    assert wrong == []
