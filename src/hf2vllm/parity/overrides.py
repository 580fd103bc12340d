"""Per-side "what if" overrides: ``--hf-option KEY=VALUE`` / ``--vllm-option KEY=VALUE``.

One flag for every kind of setting; the key decides where it goes:

- a ``GenerationSpec`` field (``repetition_penalty``, ``stop_token_ids``, ``top_k``...): this side's
  generation settings;
- a ``PromptOptions`` field (``chat_template``, ``add_bos_token``, ``add_special_tokens``,
  ``backend_tokenizes``): how this side's prompt ids are built (by the one tokenisation path);
- ``skip_special_tokens`` / ``spaces_between_special_tokens``: how this side's text is decoded;
- anything else: a load option of the backend (``dtype``, ``max_model_len``, ``kv_cache_gib``,
  ``attn_implementation``, or any ``vllm.LLM`` engine argument).

Values are JSON when they parse (``1.3``, ``[2]``, ``true``, ``{"rope_type": "linear"}``), else strings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hf2vllm.errors import InputError
from hf2vllm.requests import PromptOptions
from hf2vllm.spec import GenerationSpec

DECODE_KEYS = ("skip_special_tokens", "spaces_between_special_tokens")


def parse_assignment(text: str, flag: str) -> tuple[str, Any]:
    """``"KEY=VALUE"`` -> ``(key, value)``; VALUE is JSON when it parses.

    >>> parse_assignment("repetition_penalty=1.3", "--vllm-option")
    ('repetition_penalty', 1.3)
    >>> parse_assignment("dtype=bfloat16", "--vllm-option")
    ('dtype', 'bfloat16')
    """
    key, sep, raw = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise InputError(f"{flag} {text!r}: expected KEY=VALUE (e.g. {flag} repetition_penalty=1.3)")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def apply_side_options(choice: Any, assignments: Sequence[str], flag: str) -> Any:
    """A copy of a ``BackendChoice`` with the assignments routed to load/generation/prompt/decode."""
    load = dict(choice.options)
    generation = dict(choice.generation)
    prompt = choice.prompt.model_dump()
    decode = dict(choice.decode)
    for text in assignments:
        key, value = parse_assignment(text, flag)
        if key in GenerationSpec.model_fields:
            generation[key] = value
        elif key in PromptOptions.model_fields:
            if not isinstance(value, bool):
                raise InputError(f"{flag} {key}={value!r}: expected true or false")
            prompt[key] = value
        elif key in DECODE_KEYS:
            if not isinstance(value, bool):
                raise InputError(f"{flag} {key}={value!r}: expected true or false")
            decode[key] = value
        else:
            if key == "dtype":
                from hf2vllm.dtypes import normalise_dtype

                value = normalise_dtype(str(value))
            load[key] = value
    if generation:
        # Fail now, naming the parameter, rather than after a model load.
        GenerationSpec.checked(**generation)
    return choice.model_copy(
        update={"options": load, "generation": generation, "prompt": PromptOptions(**prompt), "decode": decode}
    )
