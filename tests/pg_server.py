"""A throwaway PostgreSQL server for the tests: its own data directory, trust auth, listening only on
127.0.0.1 on a free port, its unix socket inside its own directory.

Run as root, the server binaries run as the `postgres` user through runuser (initdb refuses root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

BIN_GLOB = "/usr/lib/postgresql/*/bin"
START_ATTEMPTS = 3


class PostgresUnavailable(RuntimeError):
    pass


def find_bin_dir() -> Path:
    """The bin directory of the newest installed PostgreSQL with initdb, pg_ctl and postgres."""
    candidates = []
    for path in glob.glob(BIN_GLOB):
        bin_dir = Path(path)
        if all((bin_dir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            version = bin_dir.parent.name
            candidates.append((int(version) if version.isdigit() else 0, bin_dir))
    if not candidates:
        raise PostgresUnavailable(
            f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under {BIN_GLOB}; "
            "`make test` installs postgresql (apt-get install postgresql)"
        )
    return max(candidates)[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    bin_dir: Path
    base: Path
    port: int
    user: str = "postgres"
    max_connections: int = 50

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @classmethod
    def start(cls, max_connections: int = 50) -> PostgresServer:
        bin_dir = find_bin_dir()
        base = Path(tempfile.mkdtemp(prefix="hub-pg-"))
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(base, account.pw_uid, account.pw_gid)
        server = cls(bin_dir, base, 0, max_connections=max_connections)
        try:
            server._run("initdb", "-D", str(server.data_dir), "-A", "trust", "-U", server.user,
                        "-E", "UTF8", "--locale=C", "--no-sync")
            server._start_on_free_port()
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        return server

    def _start_on_free_port(self) -> None:
        failure = ""
        for _ in range(START_ATTEMPTS):  # another process may take the port between probe and bind
            self.port = free_port()
            try:
                self._start()
                return
            except PostgresUnavailable as exc:
                failure = str(exc)
        raise PostgresUnavailable(f"PostgreSQL did not start after {START_ATTEMPTS} attempts: {failure}")

    def _start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} "
                   f"-c fsync=off -c full_page_writes=off -c max_connections={self.max_connections}")
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.base / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop immediately (every session ends, as in a crash), stay down `down_seconds`, start again
        on the same port."""
        self._run("pg_ctl", "-D", str(self.data_dir), "stop", "-m", "immediate")
        time.sleep(down_seconds)
        self._start()

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its postgresql:// URL."""
        name = name or f"t_{uuid.uuid4().hex}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        result = subprocess.run(command, cwd=self.base, env=env, capture_output=True, text=True,
                                timeout=120, check=False)
        if result.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresUnavailable(
                f"{program} failed ({result.returncode}): {result.stderr.strip()[-2000:]}\n{tail}"
            )
