"""``hf2vllm check-server URL``: is this server usable for the migration, and if not, why exactly."""

from __future__ import annotations

import typer


def check_server(
    url: str = typer.Argument(..., help="OpenAI base URL, e.g. http://127.0.0.1:8000/v1 (given the server root, /v1 is tried)."),
    model: str = typer.Option(None, "--model", "-m", help="Served model name (default: the only one served)."),
    api_key_env: str = typer.Option(None, "--api-key-env", help="Environment variable holding the API key."),
    top_k: int = typer.Option(5, "--top-k", min=1, max=20, help="Logprob alternatives to request and verify."),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds per request."),
    require: list[str] = typer.Option(None, "--require", help="Also require this check (prompt_logprobs, prefix_caching, streaming, max_model_len)."),
    skip: list[str] = typer.Option(None, "--skip", help="Do not require this check (e.g. chat for a base model)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Connection diagnostics (refused / timeout / TLS / 401-403 / wrong base URL / model not served,
    each with a one-line fix), then completion, chat, logprobs vs the requested top-k, prompt_logprobs,
    prefix caching and max model length. Exit 0 only when every required check passes (1 otherwise).
    """
    from hf2vllm import checks

    checks.api_key_env(api_key_env)
    checks.server_url(url, api_key_env=api_key_env)
    checks.positive(timeout, "--timeout", "seconds per request")

    from rich.console import Console
    from rich.table import Table

    from hf2vllm.server.diagnostics import CHECK_NAMES, DEFAULT_REQUIRED, CheckOptions
    from hf2vllm.server.diagnostics import check_server as run_checks

    for option, names in (("--require", require), ("--skip", skip)):
        for name in names or []:
            checks.choice(name, option, CHECK_NAMES)
    required = [n for n in dict.fromkeys([*DEFAULT_REQUIRED, *(require or [])]) if n not in (skip or [])]
    report = run_checks(CheckOptions(base_url=url, model=model, api_key_env=api_key_env, timeout_s=timeout,
                                     top_k=top_k, required=required))
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        console = Console()
        table = Table(title=f"check-server {report.base_url}" + (f" — {report.model}" if report.model else ""))
        table.add_column("check")
        table.add_column("result", justify="center")
        table.add_column("detail", overflow="fold")
        for check in report.checks:
            mark = "[green]ok[/]" if check.passed else ("[red]FAIL[/]" if check.required else "[yellow]no[/]")
            detail = check.detail + (f"\n[bold]fix:[/] {check.fix}" if check.fix and not check.passed else "")
            table.add_row(check.name + ("" if check.required else " (info)"), mark, detail)
        console.print(table)
        console.print("[green]all required checks passed[/]" if report.passed else "[red]required checks failed[/]")
    if not report.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("check-server")(check_server)
