"""The package's layers: imports only point down (DESIGN.md §7).

Every `import`/`from ... import` in src/mlci, also the lazy ones inside functions, is read with
`ast`; a module may import only modules of its own layer or below. Within the leaves the order
is fixed too, so that no two leaves import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mlci"

# top to bottom; a module belongs to the first prefix it matches (longest prefix wins)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry points", ("mlci.cli", "mlci.gha.__main__", "mlci.__main__")),
    ("commands", ("mlci.commands",)),
    ("flows", ("mlci.flows",)),
    ("gha", ("mlci.gha",)),
    ("serve", ("mlci.serve",)),
    ("model stages", ("mlci.train", "mlci.evaluate")),
    ("registry", ("mlci.registry",)),
    ("report", ("mlci.report",)),
    ("data", ("mlci.data",)),
    ("stats", ("mlci.stats",)),
    # gha.env reads the job's context (GITHUB_*, the event file) for every layer
    ("base", ("mlci.config", "mlci.io", "mlci.errors", "mlci.context", "mlci.durations",
              "mlci.progress", "mlci.modelspec", "mlci.images", "mlci.gha.env", "mlci")),
]


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    if rank < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return rank


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("mlci")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("mlci"):
                continue
            # `from mlci import x` / `from mlci.stats import drift` name submodules
            for a in node.names:
                sub = f"{mod}.{a.name}"
                found.append((node.lineno, sub if (SRC.parent / Path(*sub.split("."))).with_suffix(
                    ".py").exists() or (SRC.parent / Path(*sub.split("."))).is_dir() else mod))
    return found


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_point_down(path: Path) -> None:
    me = module_name(path)
    mine = layer_of(me)
    upward: list[str] = []
    for line, target in sorted(set(imports_of(path))):
        if target == "mlci":  # `from mlci import __version__`
            continue
        theirs = layer_of(target)
        if theirs < mine and not any(f":{line} imports {target} " in u for u in upward):
            upward.append(f"{path.relative_to(SRC.parent)}:{line} imports {target} "
                          f"({LAYERS[theirs][0]} is above {LAYERS[mine][0]})")
    assert not upward, "\n".join(upward)


def third_party_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_only_the_registry_imports_mlflow(path: Path) -> None:
    """`mlci.registry` is the one seam to MLflow (DESIGN.md §8): every other module goes
    through its facade, so "absent" vs "error", the flavour table, the trust check and the
    alias writer are decided in one place."""
    if module_name(path).startswith("mlci.registry"):
        return
    found = [f"{path.relative_to(SRC.parent)}:{line} imports {mod}"
             for line, mod in third_party_imports(path)
             if mod == "mlflow" or mod.startswith("mlflow.")]
    assert not found, "\n".join(found)


def _reads_github_env(node: ast.AST) -> bool:
    """`os.environ.get("GITHUB_…")`, `os.getenv("GITHUB_…")` or `os.environ["GITHUB_…"]`."""
    def github_literal(n: ast.AST | None) -> bool:
        return isinstance(n, ast.Constant) and isinstance(n.value, str) and \
            n.value.startswith("GITHUB_")

    if isinstance(node, ast.Call) and node.args and github_literal(node.args[0]):
        f = node.func
        return isinstance(f, ast.Attribute) and f.attr in ("get", "getenv", "pop")
    if isinstance(node, ast.Subscript):
        return github_literal(node.slice) and "environ" in ast.unparse(node.value)
    return False


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_only_gha_env_reads_the_github_context(path: Path) -> None:
    """One reader of `GITHUB_*` and the event file (`mlci.gha.env`): one place decides what
    an absent or empty value means, and the event file is parsed once."""
    if module_name(path) == "mlci.gha.env":
        return
    text = path.read_text(encoding="utf-8")
    found = [f"{path.relative_to(SRC.parent)}:{n.lineno}" for n in ast.walk(ast.parse(text))
             if _reads_github_env(n)]
    assert not found, "read GITHUB_* through mlci.gha.env: " + ", ".join(found)


def test_layers_cover_the_package() -> None:
    for p in MODULES:
        layer_of(module_name(p))
