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
    "record",
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
    """Console-script entry point: user errors become one line on stderr and their exit code; anything
    else becomes one line too, with the traceback saved to a file for a bug report (never on screen)."""
    from hf2vllm import interrupt
    from hf2vllm.errors import one_line, save_traceback

    # SIGTERM/SIGHUP/SIGINT: unwind like Ctrl-C, no process left, one line (interrupt.py).
    interrupt.install(command_groups=[group.name for group in app.registered_groups if group.name])
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer.exceptions import Abort

    try:
        # Not standalone: a usage error (a value Typer cannot parse or that is out of its range) comes
        # back here as an exception and is printed as one line, like every other bad input.
        code = app(standalone_mode=False)
        sys.exit(interrupt.settle(code if isinstance(code, int) else 0))
    except SystemExit as err:  # a signal's interrupt.Interrupted is one too
        sys.exit(interrupt.settle(err.code))
    except NoArgsIsHelpError as err:
        print(err.format_message(), file=sys.stderr)
        sys.exit(err.exit_code)
    except ClickException as err:
        where = getattr(getattr(err, "ctx", None), "command_path", "hf2vllm")
        print(f"error: {where}: {one_line(err.format_message())} (see {where} --help)", file=sys.stderr)
        sys.exit(err.exit_code)
    except Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(1)
    except HF2VLLMError as err:
        if interrupt.received():  # an engine failing as the signal stops it: the signal is the news
            sys.exit(interrupt.settle(err.exit_code))
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        sys.exit(err.exit_code)
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, traceback to a file
        if interrupt.received():
            sys.exit(interrupt.settle(1))
        from hf2vllm.backends.engine_log import explain_engine_failure

        explained = explain_engine_failure(err)  # vLLM's engine died: its log names why
        if explained is not None:
            save_traceback(err)
            print(f"error: {one_line(str(explained))}", file=sys.stderr)
            sys.exit(explained.exit_code)
        where = save_traceback(err)
        print(f"error: unexpected {type(err).__name__}: {one_line(str(err))[:300]} (this is a bug in hf2vllm "
              f"or a library; the traceback is in {where})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
