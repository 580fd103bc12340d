"""``hf2vllm serve``: start ``vllm serve`` right (loopback, key from env, log file, readiness, clean stop)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import typer


def serve(
    ctx: typer.Context,
    model: str = typer.Option(None, "--model", "-m", help="Checkpoint dir or cached model name (default: the bundled smollm2-135m)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; loopback unless you say otherwise."),
    port: int = typer.Option(8000, "--port", help="Port (0 = a free one)."),
    served_model_name: str = typer.Option(None, "--served-model-name", help="Name clients use (default: the bundled model's name, else the path)."),
    api_key_env: str = typer.Option(None, "--api-key-env", help="Environment variable holding the API key (the key itself is never printed)."),
    preset: str = typer.Option(None, "--preset", help="Deployment preset (hf2vllm plan presets) whose flags to use."),
    log_file: Path = typer.Option(None, "--log-file", help="Server log (default: ./vllm-serve-PORT.log)."),
    startup_timeout: float = typer.Option(600.0, "--startup-timeout", help="Seconds to wait for /health and /v1/models."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the vllm command (the key as $VAR, never its value) and exit."),
) -> None:
    """Start an OpenAI-compatible vLLM server and keep it running until Ctrl-C or SIGTERM.

    Flags after `--` pass through to `vllm serve` verbatim, e.g.
    `hf2vllm serve -- --max-model-len 2048 --enable-prefix-caching`. On CPU, when no KV size is given,
    2 GiB is set explicitly (vLLM's default fraction of memory fails on shared machines).
    """
    from hf2vllm import checks

    checks.api_key_env(api_key_env)
    from hf2vllm.errors import InputError

    passthrough = list(ctx.args)
    for flag in ("--host", "--port", "--api-key", "--model"):
        if flag in passthrough or any(a.startswith(flag + "=") for a in passthrough):
            raise InputError(f"{flag}: use hf2vllm serve's own {flag}{'-env' if flag == '--api-key' else ''} option, "
                             "not a passthrough flag")
    # Checked before the model is resolved or vLLM starts: vLLM would take a minute to fail on them.
    checks.port(port)
    if not host.strip():
        raise InputError("--host: empty; give an interface such as 127.0.0.1 (loopback) or 0.0.0.0 (all)")
    if preset is not None:
        from hf2vllm.deploy.presets import check_preset_name

        check_preset_name(preset)
    checks.output_file(log_file, "--log-file")
    checks.positive(startup_timeout, "--startup-timeout", "seconds to wait for /health and /v1/models")
    _check_passthrough_values(passthrough)
    from hf2vllm.models import resolve_model
    from hf2vllm.server.launch import ServerConfig, VLLMServer, free_port, serve_args_for

    model_path = resolve_model(model)
    if served_model_name is None and model is None:
        served_model_name = "smollm2-135m"
    port = port or free_port(host)
    args = serve_args_for(model_path, passthrough, preset=preset, host=host, port=port,
                          served_model_name=served_model_name)
    config = ServerConfig(
        model=model_path, served_model_name=served_model_name, host=host, port=port, extra_args=args,
        api_key_env=api_key_env, log_path=log_file or Path(f"vllm-serve-{port}.log"),
        startup_timeout_s=startup_timeout,
    )
    server = VLLMServer(config)
    if dry_run:
        # The key reaches vLLM through its environment (VLLM_API_KEY), never its command line: show the variable.
        key = f'VLLM_API_KEY="${api_key_env}" ' if api_key_env else ""
        typer.echo(key + " ".join(server.command()))
        return
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    typer.echo(f"starting vLLM for {model_path} (log: {server.log_path})", err=True)
    server.start(should_abort=stop.is_set)
    try:
        if stop.is_set():
            return
        typer.echo(f"server pid {server.pid} (process group {server.pid})", err=True)
        typer.echo(f"serving {server.model_name} at {server.base_url}")
        if api_key_env:
            typer.echo(f"clients authenticate with the key in ${api_key_env}", err=True)
        sys.stdout.flush()
        while not stop.wait(1.0):
            if not server.running():
                raise InputError(f"vllm serve exited with code {server.returncode}; log: {server.log_path}")
    finally:
        typer.echo("stopping the server", err=True)
        server.stop()


def _check_passthrough_values(args: list[str]) -> None:
    """vLLM flags after ``--`` whose values have a known set (the installed vLLM's own lists)."""
    from hf2vllm import checks
    from hf2vllm.deploy.vllm_names import kv_cache_dtypes, model_dtypes, quantization_methods
    from hf2vllm.errors import InputError

    known = {"--quantization": quantization_methods, "-q": quantization_methods,
             "--kv-cache-dtype": kv_cache_dtypes, "--dtype": model_dtypes}
    for index, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag not in known:
            continue
        if not eq:
            if index + 1 >= len(args) or args[index + 1].startswith("--"):
                raise InputError(f"{flag} (after --): no value given; e.g. {flag} {known[flag]()[0]}")
            value = args[index + 1]
        checks.choice(value, f"{flag} (after --)", known[flag]())


def register(app: typer.Typer) -> None:
    app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(serve)
