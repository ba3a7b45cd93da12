"""The layer rules of README's architecture section, checked on the source: every import statement,
function-level ones included (they hide cycles and layer breaks from a plain import check).

generation never imports the model (it drives the step interface); web never imports the store, the
model or torch (it formats and authorises, the service decides); the pure layers (store, model, text,
generation) never import the service, the web or training; serving never imports training.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (package whose files are checked, forbidden import prefixes)
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("chatbot.generation", ("chatbot.model", "chatbot.store", "chatbot.service", "web", "training")),
    ("web", ("chatbot.store", "chatbot.model", "torch")),
    ("chatbot.store", ("chatbot.service", "web", "training")),
    ("chatbot.model", ("chatbot.service", "web", "training")),
    ("chatbot.text", ("chatbot.service", "web", "training")),
    ("chatbot.service", ("web", "training")),
]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = ROOT) -> list[tuple[int, list[str]]]:
    """(line, absolute module names) of every import statement in the file, in line order; relative
    imports resolved, and ``from chatbot import model`` also names ``chatbot.model``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: list[tuple[int, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.append((node.lineno, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, [module, *(f"{module}.{alias.name}" for alias in node.names)]))
    return sorted(found)


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(package: str, forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    directory = root.joinpath(*package.split("."))
    out = []
    for path in sorted(directory.rglob("*.py")):
        for line, modules in imports_of(path, root):
            module, bad = next(((m, p) for m in modules for p in forbidden if _matches(m, p)), ("", None))
            if bad is not None:
                out.append(f"{path.relative_to(root)}:{line} imports {module} ({package} must not import {bad})")
    return out


@pytest.mark.parametrize(("package", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_layer_rule(package: str, forbidden: tuple[str, ...]) -> None:
    assert ROOT.joinpath(*package.split(".")).is_dir(), package
    assert violations(package, forbidden) == []


def test_the_check_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself: a hidden import inside a function and a relative import are both found."""
    source = "def f():\n    from chatbot.model.checkpoint import load_checkpoint\n\nfrom ..store import db\n"
    tree_path = tmp_path / "chatbot" / "generation" / "probe.py"
    tree_path.parent.mkdir(parents=True)
    tree_path.write_text(source)
    found = violations("chatbot.generation", ("chatbot.model", "chatbot.store"), root=tmp_path)
    assert [v.split(" (")[0] for v in found] == [
        "chatbot/generation/probe.py:2 imports chatbot.model.checkpoint",
        "chatbot/generation/probe.py:4 imports chatbot.store",
    ]
