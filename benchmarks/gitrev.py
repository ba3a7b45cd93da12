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
