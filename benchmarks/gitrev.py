"""Load some of this project's modules as they were at another git revision, beside the current ones, so a
benchmark can print before/after in one process (same machine state, same inputs)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def modules_at(rev: str, paths: dict[str, str], prefix: str = "_baseline") -> types.SimpleNamespace:
    """``{name: repo path}`` executed from ``git show REV:path``, in order. While they load, each one stands in
    for its package name in ``sys.modules``, so a later module's ``from chatbot... import`` gets the old code
    too; the current modules are put back afterwards."""
    modules: dict[str, types.ModuleType] = {}
    saved: dict[str, types.ModuleType | None] = {}
    try:
        for name, path in paths.items():
            modules[name] = _exec_at(rev, f"{prefix}_{name}", path)
            package_name = path.removesuffix(".py").replace("/", ".")
            saved.setdefault(package_name, sys.modules.get(package_name))
            sys.modules[package_name] = modules[name]
    finally:
        for package_name, module in saved.items():
            if module is None:
                sys.modules.pop(package_name, None)
            else:
                sys.modules[package_name] = module
    return types.SimpleNamespace(**modules)


def _exec_at(rev: str, module_name: str, path: str) -> types.ModuleType:
    try:
        source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True,
                                text=True).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"cannot read {path} at {rev}: {exc.stderr.strip()}") from None
    module = types.ModuleType(module_name)
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)  # noqa: S102 -- our own code from git
    return module


def tree_at(rev: str, path: str, dest: Path) -> Path:
    """Write the files under ``path`` as committed at ``rev`` into ``dest`` (bytes as stored, so weights
    survive) and return ``dest``: a model directory of another revision to serve beside the current one."""
    try:
        listed = subprocess.run(["git", "ls-tree", "-r", "-z", "--name-only", rev, "--", path], cwd=REPO,
                                check=True, capture_output=True).stdout
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"cannot list {path} at {rev}: {exc.stderr.decode().strip()}") from None
    files = [name.decode() for name in listed.split(b"\0") if name]
    if not files:
        raise SystemExit(f"{path} holds no files at {rev}")
    for name in files:
        target = dest / Path(name).relative_to(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(subprocess.run(["git", "show", f"{rev}:{name}"], cwd=REPO, check=True,
                                          capture_output=True).stdout)
    return dest


def commit_of(rev: str) -> str:
    """The short commit id ``rev`` names, for a header that says what was measured."""
    return subprocess.run(["git", "rev-parse", "--short", f"{rev}^{{commit}}"], cwd=REPO, check=True,
                          capture_output=True, text=True).stdout.strip()
