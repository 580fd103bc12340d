"""The ``hf2vllm`` command line: one Typer app; each subcommand lives in ``hf2vllm.commands.<name>``.

Subcommand modules stay thin (parse options, call the library, render) and import heavy libraries
(torch, vllm) inside the command function so that ``hf2vllm --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from hf2vllm.errors import HF2VLLMError

app = typer.Typer(
    name="hf2vllm",
    help="Migrate Hugging Face Transformers inference to vLLM and prove the results still agree.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module exposes ``register(app)``. Add a capability by adding its module name here.
COMMAND_MODULES = [
    "models",
    "compare",
    "doctor",
    "translate",
    "serve",
    "check_server",
    "plan",
    "multimodal",
    "calibrate",
    "monitor",
    "bench",
    "report",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"hf2vllm.commands.{_name}").register(app)


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and their exit code."""
    try:
        app()
    except HF2VLLMError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
