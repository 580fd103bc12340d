"""Option values that more than one entry point takes, parsed in one place.

The commands (``compare``, ``translate``, ``budget``) and the Python API (``hf2vllm.api``) all call
these, so a JSON option or a per-side ``KEY=VALUE`` reads the same everywhere and its errors name the
option the same way. Values may come as command-line text or, from Python, already as objects::

    json_object_option('{"max_new_tokens": 32}', "--hf-kwargs")   # {'max_new_tokens': 32}
    json_object_option({"max_new_tokens": 32}, "--hf-kwargs")     # the same dict
    side_assignments({"repetition_penalty": 1.3})                 # ['repetition_penalty=1.3']
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hf2vllm.errors import InputError

if TYPE_CHECKING:
    from hf2vllm.parity.run import BackendChoice

JsonObject = Mapping[str, Any] | str
"""A JSON object: a mapping, or its text (inline, or ``@file.json``) as on the command line."""

SideOptions = Mapping[str, Any] | Sequence[str]
"""One side's deliberate differences: ``{"repetition_penalty": 1.3}`` or ``["repetition_penalty=1.3"]``."""


def json_object_option(value: JsonObject | None, option: str, *, example: str = '{"key": 1}') -> dict[str, Any] | None:
    """A JSON-object option: a mapping as given, or text (inline or ``@file.json``) parsed; ``None`` stays
    ``None``. Errors are ``InputError`` lines naming ``option`` (and the file)."""
    from hf2vllm import checks

    return checks.json_object(value, option, example=example)


def side_assignments(value: SideOptions | None) -> list[str]:
    """One side's options as ``KEY=VALUE`` texts, the form ``parity.overrides`` parses (VALUE is JSON when it
    parses, so a mapping's values go in as JSON and come back unchanged)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [f"{key}={json.dumps(item)}" for key, item in value.items()]
    return [str(item) for item in value]


def per_side_choices(
    choices: list[BackendChoice], hf_option: Sequence[str], vllm_option: Sequence[str],
    no_chat_template: str | None, vllm_tokenize: bool,
) -> list[BackendChoice]:
    """Apply --hf-option/--vllm-option/--no-chat-template/--vllm-tokenize to the side of that kind."""
    from hf2vllm.parity.overrides import apply_side_options

    if no_chat_template not in (None, "hf", "vllm"):
        raise InputError(f"--no-chat-template {no_chat_template!r}: expected hf or vllm")
    extra = {
        "hf": list(hf_option) + (["chat_template=false"] if no_chat_template == "hf" else []),
        "vllm": list(vllm_option)
        + (["chat_template=false"] if no_chat_template == "vllm" else [])
        + (["backend_tokenizes=true"] if vllm_tokenize else []),
    }
    kinds = {c.kind for c in choices}
    if "vllm" not in kinds and "server" in kinds:
        extra["server"] = extra.pop("vllm")  # a vLLM server is the vLLM side: its per-request settings apply
    for kind, assignments in extra.items():
        if assignments and kind not in kinds:
            raise InputError(f"--{kind}-option/--no-chat-template {kind}: no {kind} side in this comparison")
    chosen = []
    for c in choices:
        flag = "--vllm-option" if c.kind == "server" else f"--{c.kind}-option"
        side = apply_side_options(c, extra.get(c.kind, []), flag)
        loads = sorted(set(side.options) - set(c.options))
        if c.kind == "server" and loads:
            raise InputError(f"--vllm-option {loads[0]}: a server's engine settings are the ones it was started with; "
                             "per-request settings (generation, prompt, decode) apply, engine arguments do not")
        chosen.append(side)
    return chosen


__all__ = ["JsonObject", "SideOptions", "json_object_option", "per_side_choices", "side_assignments"]
