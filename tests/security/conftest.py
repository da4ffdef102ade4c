"""A hostile host for the probes: secrets in the environment and beside the inputs folder,
symlinks planted in that folder, and a loopback port that records every connection."""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dspy_rlm.sandbox import inputs as mount

SECRET = "sk-test-SECRET-7d1f9c0b4e2a6-never-in-the-sandbox"
FILE_SECRET = "host-file-SECRET-3b8e5a1c9f70"


@dataclass
class Host:
    secret_file: Path
    port: int
    connections: list = field(default_factory=list)

    @property
    def secrets(self) -> tuple[str, ...]:
        return SECRET, FILE_SECRET

    def code(self, text: str) -> str:
        return text.replace("SECRET_PATH", str(self.secret_file)).replace("PORT", str(self.port))


@pytest.fixture
def host(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    # Input folders are made in tmp_path, beside a file holding a secret.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    secret_file = tmp_path / "host_secret.txt"
    secret_file.write_text(FILE_SECRET)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text(FILE_SECRET)
    write_inputs = mount.write_inputs

    def write_and_plant(folder, inputs, prefix=""):
        specs = write_inputs(folder, inputs, prefix)
        if not (folder / "leak.txt").exists():
            (folder / "leak.txt").symlink_to(secret_file)
            (folder / "hostetc").symlink_to(etc, target_is_directory=True)
        return specs

    monkeypatch.setattr(mount, "write_inputs", write_and_plant)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    state = Host(secret_file, listener.getsockname()[1])
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
            except OSError:
                continue
            state.connections.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield state
    stop.set()
    thread.join(timeout=5)
    listener.close()
