"""Files that hold people's words are created owner-only: 0600 files in 0700 directories.

The SQLite database (its WAL and shared-memory files take the database file's mode), exported training
pairs and nightly work files all carry customer text. Created with the process umask they came out 0644
in 0755 directories: readable by every account on the machine. The mode is given at creation (``os.open``),
so there is no moment when the file exists with a wider one. Directories that already exist are left as
they are (they may be shared on purpose); the ones created here get 0700.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a directory; created 0700 (with its missing parents) when it does not exist yet."""
    directory = Path(path)
    missing = []
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    for created in missing:  # mkdir's mode is filtered by the umask, and parents ignore it: set it exactly
        try:
            os.chmod(created, DIR_MODE)
        except OSError:
            pass  # raced with someone else's removal: nothing to protect
    return directory


def create_private(path: str | os.PathLike[str]) -> bool:
    """Create an empty 0600 file if none exists (True), else leave the existing one alone (False)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def open_private(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for writing, the file created 0600 (an existing one is narrowed to 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        if "b" not in mode and "encoding" not in kwargs:
            kwargs["encoding"] = "utf-8"
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def write_private_text(path: str | os.PathLike[str], text: str) -> None:
    """``Path.write_text`` (UTF-8) with the file created 0600."""
    with open_private(path, "w") as fh:
        fh.write(text)


def replace_private_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically replace ``path`` with an owner-only file holding ``text`` (UTF-8): a reader sees the old
    file or the new one, never half of it, and the old inode (with its text) is unlinked."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
