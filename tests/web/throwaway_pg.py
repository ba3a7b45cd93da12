"""A PostgreSQL cluster of the test's own (``initdb`` + ``pg_ctl`` on a free port), to stop and restart at
will: fault tests never touch the shared server on 5432. As root, the cluster runs as the ``postgres``
system user (``initdb`` refuses root). Skips when no PostgreSQL binaries or no such user are found."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from staff_server import free_port

from tests.missing import missing


@dataclass
class Cluster:
    bin_dir: Path
    data: Path
    port: int
    user: str | None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([str(self.bin_dir / args[0]), *args[1:]], check=True, capture_output=True, timeout=120,
                       user=self.user, group=self.user and pwd.getpwnam(self.user).pw_gid)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        self._run("pg_ctl", "-D", str(self.data / "db"), "-l", str(self.data / "log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: like a crash (no checkpoint, recovery on the next start)."""
        self._run("pg_ctl", "-D", str(self.data / "db"), "-m", mode, "-w", "stop")


@contextmanager
def throwaway_postgresql() -> Iterator[Cluster]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and not shutil.which("initdb"):
        missing("no initdb: PostgreSQL server binaries are not installed")
    bin_dir = Path(found[-1] if found else shutil.which("initdb")).parent  # type: ignore[arg-type]
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            missing("running as root and there is no 'postgres' user for initdb")
    data = Path(tempfile.mkdtemp(prefix="chatbot-pg-"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(bin_dir, data, free_port(), user)
    try:
        cluster._run("initdb", "-D", str(data / "db"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        cluster.start()
        yield cluster
    finally:
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"], check=False,
                       capture_output=True, timeout=60, user=user, group=user and pwd.getpwnam(user).pw_gid)
        shutil.rmtree(data, ignore_errors=True)
