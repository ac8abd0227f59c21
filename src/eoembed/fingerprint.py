"""Code fingerprints: a hash of exactly the eoembed code a workflow stage runs.

The workflow passes each stage's fingerprint as a Snakemake param, so editing library code
reruns the jobs that run it (and what follows), and nothing else; ``--rerun-triggers mtime``
still skips it. The code is found statically from a root (a rule script, or a module):

* ``from eoembed.m import f`` where ``f`` is a top-level function of ``m`` pulls in ``m``'s
  *header* (its top-level statements other than function and class definitions) and ``f``
  with the top-level functions and classes it names, recursively; anything else imported
  (a class, a constant, ``import eoembed.m``) pulls in the whole module;
* imports inside the pulled-in code are followed (function-level imports too), imports under
  ``if TYPE_CHECKING:`` are not, and a package's ``__init__`` is only included when it is
  imported from (``eoembed/__init__.py``, a re-export facade, is hashed but not followed).

Each piece is hashed as its syntax tree (``ast.dump``), so comments and formatting do not
count. Modules named by strings (a provider or model registry entry) are given as extra roots.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

PACKAGE = "eoembed"
SRC = Path(__file__).resolve().parent


def module_file(name: str, src: Path = SRC) -> Path | None:
    """The source file of module ``eoembed.x.y`` under ``src`` (None if it is not there)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = src.joinpath(*parts[1:])
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _parse(path: Path) -> ast.Module:
    return _parse_source(path.read_text())


@lru_cache(maxsize=None)
def _parse_source(text: str) -> ast.Module:  # keyed by content: an edited file is parsed again
    return ast.parse(text)


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _walk(node: ast.AST):
    """ast.walk that skips ``if TYPE_CHECKING:`` blocks."""
    todo = [] if _is_type_checking(node) else [node]
    while todo:
        cur = todo.pop()
        yield cur
        todo.extend(c for c in ast.iter_child_nodes(cur) if not _is_type_checking(c))


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(nodes: list[ast.AST], module: str, path: Path, src: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` pairs imported by ``nodes`` (name None = the whole module)."""
    out: list[tuple[str, str | None]] = []
    for node in nodes:
        for n in _walk(node):
            if isinstance(n, ast.Import):
                out += [(a.name, None) for a in n.names if a.name.split(".")[0] == PACKAGE]
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    pkg = _package_of(module, path).split(".")
                    pkg = pkg[:len(pkg) - (n.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                if base.split(".")[0] != PACKAGE:
                    continue
                for a in n.names:
                    sub = f"{base}.{a.name}"
                    out.append((sub, None) if module_file(sub, src) else (base, a.name))
    return out


def _defs(tree: ast.Module) -> dict[str, ast.AST]:
    return {n.name: n for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _closure_in_module(tree: ast.Module, names: set[str]) -> set[str]:
    """``names`` plus the top-level definitions they name, recursively."""
    defs, todo, seen = _defs(tree), list(names), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        todo += [n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name)]
    return seen


def code_parts(roots: list[str], src: Path = SRC) -> dict[str, str]:
    """``{"module[:def,...]": sha256}`` of every piece of code reached from ``roots``.

    A root is a module name (``eoembed.composite``), ``module:function``, or the path of a
    script (its whole code counts).
    """
    wanted: dict[str, set[str] | None] = {}  # module -> needed defs (None = whole module)
    todo: list[tuple[str, str | None]] = []
    scripts: list[Path] = []
    for root in roots:
        if root.endswith(".py"):
            scripts.append(Path(root))
        else:
            mod, _, fn = root.partition(":")
            todo.append((mod, fn or None))
    for script in scripts:
        todo += _imports([_parse(script.resolve())], "__script__", script, src)
    funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
    while todo:
        mod, name = todo.pop()
        path = module_file(mod, src)
        if path is None or (mod in wanted and wanted[mod] is None):
            continue
        tree = _parse(path)
        defs = _defs(tree)
        if name is None or not isinstance(defs.get(name), funcs):
            new = None
        else:
            new = (wanted.get(mod) or set()) | _closure_in_module(tree, {name})
            if mod in wanted and new == wanted[mod]:
                continue
        wanted[mod] = new
        header = [n for n in tree.body if n not in defs.values()]
        body = list(tree.body) if new is None else header + [defs[d] for d in sorted(new)]
        if mod != PACKAGE:  # the top-level package is a re-export facade: hashed, not followed
            todo += _imports(body, mod, path, src)
    out = {}
    for script in scripts:
        out[f"script:{script.name}"] = hashlib.sha256(ast.dump(_parse(script.resolve())).encode()).hexdigest()
    for mod, names in sorted(wanted.items()):
        tree = _parse(module_file(mod, src))
        defs = _defs(tree)
        if names is None:
            nodes, label = list(tree.body), mod
        else:
            nodes = [n for n in tree.body if n not in defs.values()] + [defs[d] for d in sorted(names)]
            label = f"{mod}:{','.join(sorted(names))}"
        out[label] = hashlib.sha256("\n".join(ast.dump(n) for n in nodes).encode()).hexdigest()
    return out


def fingerprint(roots: list[str], src: Path = SRC) -> str:
    """16-hex-digit hash of :func:`code_parts` (the code a stage runs)."""
    parts = code_parts(roots, src)
    return hashlib.sha256("\n".join(f"{k} {v}" for k, v in sorted(parts.items())).encode()).hexdigest()[:16]


def registry_module(target: str) -> str:
    """``"eoembed.models.spectral:SpectralEmbedder"`` -> ``"eoembed.models.spectral"``."""
    return target.partition(":")[0]
