"""Start and stop a real ``vllm serve`` child process — the one launcher every command and test uses.

Usage::

    with VLLMServer(ServerConfig(model=path, extra_args=["--dtype", "float32"])) as server:
        print(server.base_url)          # http://127.0.0.1:PORT/v1

The server runs in its own process group so that stopping it also stops vLLM's engine and worker
processes (no orphans). Its log goes to a file as it is written, so a crash leaves the full log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from pydantic import BaseModel, Field

from hf2vllm.errors import BackendUnavailableError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerConfig(BaseModel):
    """How to launch ``vllm serve``."""

    model: Path
    served_model_name: str | None = None
    host: str = Field("127.0.0.1", description="Loopback unless the user says otherwise.")
    port: int | None = Field(None, description="None = a free port picked at start.")
    extra_args: list[str] = Field(default_factory=list, description="Further `vllm serve` flags, verbatim.")
    api_key_env: str | None = Field(None, description="Name of the env var holding the API key (never the key).")
    log_path: Path | None = None
    startup_timeout_s: float = 600.0


class VLLMServer:
    """A running ``vllm serve`` process (see module docstring)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.port = config.port or free_port(config.host)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = config.log_path or Path(f"vllm-serve-{self.port}.log")

    @property
    def root_url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "::") else self.config.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def model_name(self) -> str:
        return self.config.served_model_name or str(self.config.model)

    def command(self) -> list[str]:
        cfg = self.config
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", str(cfg.model),
            "--host", cfg.host, "--port", str(self.port),
        ]
        if cfg.served_model_name:
            cmd += ["--served-model-name", cfg.served_model_name]
        return cmd + list(cfg.extra_args)

    def start(self) -> VLLMServer:
        env = os.environ.copy()
        if self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env)
            if not key:
                raise BackendUnavailableError(f"environment variable {self.config.api_key_env} is not set")
            # vLLM reads VLLM_API_KEY itself: the key never appears on a command line or in `ps`.
            env["VLLM_API_KEY"] = key
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = tail_lines(self.log_path, 15)
                raise BackendUnavailableError(
                    f"vllm serve exited with code {self.process.returncode} during start-up; "
                    f"log {self.log_path}:\n{tail}"
                )
            try:
                if httpx.get(f"{self.root_url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        self.stop()
        raise BackendUnavailableError(
            f"vllm serve did not answer /health within {self.config.startup_timeout_s:.0f} s; log: {self.log_path}"
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left after ``timeout_s``."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Engine workers may outlive the API process briefly; make sure the group is gone.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tail_lines(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return "(no log)"


def small_cpu_server_args(kv_cache_gib: float = 1.0, extra: Sequence[str] = ()) -> list[str]:
    """Flags for a small CPU test server: float32, eager, explicit KV size (DESIGN §2)."""
    return [
        "--dtype", "float32", "--enforce-eager",
        "--kv-cache-memory-bytes", str(int(kv_cache_gib * (1 << 30))),
        "--generation-config", "vllm", *extra,
    ]
