"""A team MLflow server: `mlflow server` on a PostgreSQL backend store, with a local artifact root.

    with TeamServer("/srv/mlflow-team") as server:          # PostgreSQL + mlflow server on 127.0.0.1
        print(server.tracking_uri)                          # http://127.0.0.1:PORT
        # dspy-rlm demo --tracking-uri http://127.0.0.1:PORT ... (optimize, batch alike)

    python -m dspy_rlm.observability.team FOLDER [--port 5000] [--pg-port 5432]   # runs until Ctrl-C

PostgreSQL runs from its own binaries (`initdb`, `pg_ctl`: on PATH, or Debian's
`/usr/lib/postgresql/*/bin`; `apt-get install postgresql`), its data in `FOLDER/pgdata`, listening on
127.0.0.1 only, local connections trusted (put a password and `md5`/`scram-sha-256` in `pg_hba.conf`
before opening it to a network). PostgreSQL refuses to run as root: as root, its commands run as
the unprivileged user `run_as` (default `postgres`), who is given the data folder. The server keeps
artifacts in `FOLDER/artifacts` and serves them (`--artifacts-destination`), so clients on other
machines can log models too. The driver is the team extra: `pip install 'dspy-rlm[team]'`.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

DATABASE = "mlflow"
DB_USER = "mlflow"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs; a clear error saying how to install them."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    raise FileNotFoundError("PostgreSQL's server programs (initdb, pg_ctl) were not found on PATH or in "
                            "/usr/lib/postgresql/*/bin; install them (Debian: apt-get install -y postgresql)")


def require_driver() -> None:
    """An ImportError naming the extra when the PostgreSQL driver MLflow needs is missing."""
    try:
        import psycopg  # noqa: F401
    except ImportError as missing:
        raise ImportError("an MLflow server on PostgreSQL needs the team extra: pip install 'dspy-rlm[team]' "
                          "(psycopg 3)") from missing


class TeamServer:
    """PostgreSQL and `mlflow server` on 127.0.0.1, started by `start()` (or `with`), stopped by `stop()`."""

    def __init__(self, folder: str | Path, *, port: int | None = None, pg_port: int | None = None,
                 run_as: str = "postgres", startup_timeout: float = 120.0):
        self.folder = Path(folder).resolve()
        self.port, self.pg_port = port or free_port(), pg_port or free_port()
        self.run_as = run_as if os.geteuid() == 0 else None
        self.startup_timeout = startup_timeout
        self.server: subprocess.Popen | None = None
        self._pg_started = False

    @property
    def backend_store_uri(self) -> str:
        return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{self.pg_port}/{DATABASE}"

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TeamServer:
        """Start PostgreSQL (creating its data folder and database the first time), then the MLflow server."""
        require_driver()
        try:
            self._start_postgres()
            self._start_mlflow()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the MLflow server, then PostgreSQL (fast shutdown); safe to call twice."""
        if self.server is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait(timeout=10)
            self.server = None
        if self._pg_started:
            self._pg(["pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w"], check=False)
            self._pg_started = False

    def __enter__(self) -> TeamServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def data(self) -> Path:
        return self.folder / "pgdata"

    def _start_postgres(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        sockets = self.folder / "pgsocket"
        sockets.mkdir(exist_ok=True)
        if self.run_as:
            shutil.chown(self.folder, user=self.run_as)
            shutil.chown(sockets, user=self.run_as)
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            self._pg(["initdb", "-D", str(self.data), "-U", DB_USER, "--auth=trust", "-E", "UTF8", "--no-instructions"])
        options = f"-p {self.pg_port} -c listen_addresses=127.0.0.1 -k {sockets}"
        self._pg_started = True  # before the start: a start that timed out may still leave a postmaster to stop
        self._pg(["pg_ctl", "start", "-D", str(self.data), "-o", options, "-l", str(self.folder / "postgres.log"), "-w"])
        # Every start, not only a fresh folder's: an earlier start may have failed after initdb, before createdb.
        made = self._pg(["createdb", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", DB_USER, DATABASE], check=False)
        if made.returncode != 0 and "already exists" not in (made.stderr or ""):
            raise RuntimeError(f"createdb failed (status {made.returncode}): {(made.stderr or made.stdout).strip()}")

    def _start_mlflow(self) -> None:
        artifacts = self.folder / "artifacts"
        artifacts.mkdir(exist_ok=True)
        log = open(self.folder / "mlflow-server.log", "ab")  # noqa: SIM115  (the server's, closed with it)
        self.server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_store_uri,
             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # its own group: stop() ends its workers
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"mlflow server exited with status {self.server.returncode}; "
                                   f"see {self.folder / 'mlflow-server.log'}")
            with contextlib.suppress(OSError):  # not listening yet
                with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            time.sleep(0.3)
        raise TimeoutError(f"mlflow server did not answer within {self.startup_timeout:g} s; "
                           f"see {self.folder / 'mlflow-server.log'}")

    def _pg(self, command: list[str], check: bool = True) -> subprocess.CompletedProcess:
        program = [str(postgres_bin() / command[0]), *command[1:]]
        if self.run_as:
            program = ["runuser", "-u", self.run_as, "--", *program]
        done = subprocess.run(program, capture_output=True, text=True, cwd=self.folder, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed (status {done.returncode}): {(done.stderr or done.stdout).strip()}")
        return done


def main(argv: list[str] | None = None) -> int:
    """Run a team server until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m dspy_rlm.observability.team", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="where PostgreSQL's data, the artifacts and the logs live")
    parser.add_argument("--port", type=int, default=5000, help="the MLflow server's port on 127.0.0.1 (default 5000)")
    parser.add_argument("--pg-port", type=int, default=5432, help="PostgreSQL's port on 127.0.0.1 (default 5432)")
    parser.add_argument("--run-as", default="postgres", help="the user PostgreSQL runs as when started by root")
    args = parser.parse_args(argv)
    with TeamServer(args.folder, port=args.port, pg_port=args.pg_port, run_as=args.run_as) as server:
        print(f"MLflow server {server.tracking_uri} on {server.backend_store_uri}; Ctrl-C stops both", flush=True)
        try:
            while server.server is not None and server.server.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
