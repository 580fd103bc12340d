"""Loading prompt sets and turning them into token ids — the one tokenisation path of hf2vllm.

Both backends receive the *same* ``prompt_token_ids``, produced here once from chat messages through
the model's chat template (or from a raw prompt string). A backend never tokenises on its own unless a
user explicitly asks for it to reproduce a migrated script.

Prompt file format (JSONL, one request per line)::

    {"id": "capital", "messages": [{"role": "user", "content": "Capital of France?"}]}
    {"prompt": "Once upon a time"}

``id`` is optional (defaults to ``line-N``); other keys are kept in ``metadata``. A file whose first
line is an OpenAI batch line (``custom_id`` + ``body``, the format ``vllm run-batch`` reads) is read by
``hf2vllm.requests_openai_batch`` instead; one format per file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from hf2vllm.errors import ContextLengthError, InputError

BUNDLED_PROMPTS = "prompts.jsonl"


class ChatRequest(BaseModel):
    """One request as the user wrote it: chat ``messages`` or a plain ``prompt``."""

    id: str
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exactly_one_input(self) -> ChatRequest:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError('give exactly one of "messages" or "prompt"')
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError('"prompt" is empty; give the text to complete')
        if self.messages is not None:
            if not self.messages:
                raise ValueError('"messages" is empty; give at least one {"role": "user", "content": "..."}')
            for i, msg in enumerate(self.messages):
                if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
                    raise ValueError(f'messages[{i}] needs "role" and "content"')
                _check_role(msg["role"], i)
                _check_content(msg["content"], i)
        return self


CHAT_ROLES = ("system", "developer", "user", "assistant", "tool")
"""The roles chat templates know; any other is a typo that a template would render as-is or drop."""


def _check_role(role: Any, i: int) -> None:
    if role in CHAT_ROLES:
        return
    import difflib

    close = difflib.get_close_matches(str(role), CHAT_ROLES, n=1) if isinstance(role, str) else []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"messages[{i}].role {role!r} is not a chat role (known: {', '.join(CHAT_ROLES)}){hint}")


def _check_content(content: Any, i: int) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list) or not content:
        kinds = {bool: "true/false", int: "a number", float: "a number", dict: "an object", type(None): "null"}
        got = "an empty list" if content == [] else kinds.get(type(content), type(content).__name__)
        raise ValueError(f"messages[{i}].content must be a string or a non-empty list of parts, got {got}")
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise ValueError(f'messages[{i}].content[{j}] must be an object with a "type" (text, image_url or image)')


def image_parts(request: ChatRequest) -> list[str]:
    """Where ``request`` holds an image part (``messages[0].content[1]``), in order."""
    return [
        f"messages[{i}].content[{j}]"
        for i, msg in enumerate(request.messages or [])
        if isinstance(msg.get("content"), list)
        for j, part in enumerate(msg["content"])
        if isinstance(part, dict) and part.get("type") in {"image", "image_url"}
    ]


def check_text_only(requests: Sequence[ChatRequest], model: str | Path | None = None) -> None:
    """Refuse image parts for a model without a vision tower, naming the first request that has one."""
    for req in requests:
        found = image_parts(req)
        if found:
            name = f"the model {model}" if model else "the model"
            raise InputError(
                f"request {req.id!r} {found[0]} is an image, but {name} is text-only (no vision_config in its "
                "config.json); use a vision-language model or drop the image parts"
            )


class PreparedRequest(BaseModel):
    """A request ready for any backend: the exact token ids both sides will see."""

    id: str
    prompt_token_ids: list[int]
    prompt_text: str = Field(description="The templated prompt text the ids were made from.")
    source: ChatRequest
    backend_tokenizes: bool = Field(
        False, description="Send prompt_text and let the backend tokenise it (ids are this module's prediction)."
    )


class PromptOptions(BaseModel):
    """How one side's prompts are built. The defaults are the correct path; every other value
    deliberately reproduces what a migrated script does, so a comparison can show its effect.

    - ``chat_template=False``: messages joined as plain text (a script that forgot the template).
    - ``add_bos_token=True``: the tokenizer adds its BOS whenever it adds special tokens, as
      ``AutoTokenizer.from_pretrained(..., add_bos_token=True)`` or a Llama tokenizer does; on text
      rendered from a template that already starts with BOS this is the doubled-BOS bug.
    - ``add_special_tokens``: force the tokenizer's special tokens on (True) or off (False) instead
      of the rule in ``render_prompt``.
    - ``backend_tokenizes=True``: the backend receives the text and tokenises it itself with special
      tokens added (vLLM's default for text prompts), as ``llm.generate(text)`` in a script would.
    """

    chat_template: bool = True
    add_bos_token: bool | None = None
    add_special_tokens: bool | None = None
    backend_tokenizes: bool = False


def bundled_prompts_path() -> Path:
    """Path of the prompt set shipped with hf2vllm (48+ chat requests of varied kinds)."""
    return Path(str(resources.files("hf2vllm.data").joinpath(BUNDLED_PROMPTS)))


def read_prompt_file(path: str | Path) -> str:
    """A prompt file's text (UTF-8, BOM removed); a missing or unreadable one raises ``InputError``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"prompts file not found: {path}")
    if not path.is_file():
        raise InputError(f"prompts file {path} is a directory; give the JSONL file itself")
    return _read_utf8(path).removeprefix("\ufeff")  # a BOM (Windows editors) is not content


def json_object_lines(path: str | Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSONL file's ``text``; a line that is not a
    JSON object raises ``InputError`` naming ``file:line`` (every prompt-file format reads its lines here)."""
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(raw, dict):
            raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(raw).__name__}")
        yield lineno, raw


def load_requests(path: str | Path) -> list[ChatRequest]:
    """Read a JSONL prompt file (plain or OpenAI batch); any malformed line raises ``InputError`` naming
    ``file:line``."""
    from hf2vllm.requests_openai_batch import first_line_is_batch, is_batch_line, parse_openai_batch

    path = Path(path)
    text = read_prompt_file(path)
    if first_line_is_batch(text):
        return parse_openai_batch(path, text).chat_requests()
    requests: list[ChatRequest] = []
    seen: dict[str, int] = {}
    first_line = 0
    for lineno, raw in json_object_lines(path, text):
        first_line = first_line or lineno
        if is_batch_line(raw):
            raise InputError(f"{path}:{lineno}: an OpenAI batch line (\"custom_id\", \"body\"), but line {first_line} "
                             "is a plain request; one format per file: write every line one way or split the file")
        known = {"id", "messages", "prompt"}
        if "messages" not in raw and "prompt" not in raw:
            raise InputError(f"{path}:{lineno}: {_missing_input(raw)}")
        payload = {k: v for k, v in raw.items() if k in known}
        payload.setdefault("id", f"line-{lineno}")
        payload["id"] = str(payload["id"])
        payload["metadata"] = {k: v for k, v in raw.items() if k not in known}
        try:
            req = ChatRequest.model_validate(payload)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            msg = first["msg"].removeprefix("Value error, ")
            raise InputError(f"{path}:{lineno}: {msg}{f' (at {where})' if where else ''}") from None
        if req.id in seen:
            raise InputError(f"{path}:{lineno}: duplicate id {req.id!r} (first on line {seen[req.id]})")
        seen[req.id] = lineno
        requests.append(req)
    if not requests:
        raise InputError(f"{path}: no requests in file")
    return requests


def _read_utf8(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"prompts file {path}: cannot read it ({err.strerror or err})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8"
        ) from None


def _missing_input(raw: dict[str, Any]) -> str:
    import difflib

    for key in raw:
        close = difflib.get_close_matches(str(key), ["messages", "prompt"], n=1, cutoff=0.7)
        if close:
            return f'unknown key {key!r}; did you mean "{close[0]}"? (give exactly one of "messages" or "prompt")'
    return 'give exactly one of "messages" or "prompt"'


def render_prompt(request: ChatRequest, tokenizer: Any, *, chat_template: bool = True) -> tuple[str, bool]:
    """Return the prompt text and whether the tokenizer should add its own special tokens.

    Chat templates already contain BOS where the model wants one, so text rendered from a template
    is tokenised *without* special tokens; adding them again is the classic doubled-BOS bug.
    """
    if request.messages is None:
        return request.prompt or "", True
    if chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
        return text, False
    # No template (or disabled on purpose): plain concatenation, as a hand-written script would do.
    return "\n".join(str(m["content"]) for m in request.messages) + "\n", True


def prepare_requests(
    requests: Sequence[ChatRequest],
    tokenizer: Any,
    *,
    max_model_len: int | None = None,
    max_new_tokens: int = 0,
    chat_template: bool = True,
    options: PromptOptions | None = None,
) -> list[PreparedRequest]:
    """Tokenise every request once; refuse one that cannot fit ``max_model_len`` with its new tokens.

    ``options`` builds one side's prompts differently on purpose (see ``PromptOptions``).
    """
    options = options or PromptOptions(chat_template=chat_template)
    check_text_only(requests, getattr(tokenizer, "name_or_path", None))
    prepared = []
    for req in requests:
        text, add_special = render_prompt(req, tokenizer, chat_template=options.chat_template)
        if options.backend_tokenizes:
            add_special = True
        if options.add_special_tokens is not None:
            add_special = options.add_special_tokens
        ids = list(tokenizer(text, add_special_tokens=add_special)["input_ids"])
        bos = getattr(tokenizer, "bos_token_id", None)
        if options.add_bos_token and add_special and isinstance(bos, int) and not _adds_bos(tokenizer):
            ids = [bos, *ids]
            if options.backend_tokenizes:
                text = str(tokenizer.bos_token) + text
        if max_model_len is not None and len(ids) + max_new_tokens > max_model_len:
            raise ContextLengthError(
                f"request {req.id!r} has {len(ids)} prompt tokens; with max_new_tokens={max_new_tokens} "
                f"it needs {len(ids) + max_new_tokens} > the model's context of {max_model_len} tokens"
            )
        prepared.append(
            PreparedRequest(
                id=req.id,
                prompt_token_ids=ids,
                prompt_text=text,
                source=req,
                backend_tokenizes=options.backend_tokenizes,
            )
        )
    return prepared


def _adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer already puts BOS in front when asked for special tokens."""
    bos = getattr(tokenizer, "bos_token_id", None)
    probe = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    return bool(probe) and probe[0] == bos
