"""OpenAI batch files as prompt sets: the format of the OpenAI Batch API, which ``vllm run-batch`` also reads.

One request per line::

    {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "my-model", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16, "temperature": 0}}

``load_requests`` (``hf2vllm.requests``) sends a file here when its first non-blank line has ``custom_id``
and ``body``. The rules:

- ``custom_id`` is the request id (unique); ``method`` is ``POST``; ``url`` is ``/v1/chat/completions``
  (``body.messages``) or ``/v1/completions`` (``body.prompt``, one string), the same on every line.
- ``body.model`` names a *served* model, so it may differ from the compared one: it is kept in the
  request's ``metadata``, never checked.
- The other body keys are the OpenAI/vLLM request fields (``BODY_KEYS``). Token-affecting settings are
  renamed to ``SamplingParams`` fields (``max_completion_tokens`` -> ``max_tokens``) and must be the same on
  every line: a compare run has one ``GenerationSpec``. Output-only keys (``logprobs``, ``stream``, ...) are
  accepted and change nothing. Keys that change the prompt vLLM builds (``echo``, ``chat_template``,
  ``tools``, ...) are accepted at their default value only. An unknown key is refused with the closest one.

``batch_spec`` turns the shared settings into the run's spec the way a vLLM server would run them: the
body's values, else the model's ``generation_config.json`` (vLLM's ``--generation-config auto``), else the
OpenAI defaults (temperature 1, so a body without ``temperature`` samples), resolved by
``translation.translate_vllm`` (the reverse direction of ``hf2vllm translate``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from hf2vllm.errors import HF2VLLMError, InputError
from hf2vllm.requests import ChatRequest, json_object_lines, read_prompt_file
from hf2vllm.spec import GenerationSpec

CHAT_URL = "/v1/chat/completions"
COMPLETIONS_URL = "/v1/completions"
ENDPOINTS = (CHAT_URL, COMPLETIONS_URL)
LINE_KEYS = ("custom_id", "method", "url", "body")

OPENAI_COMPLETIONS_MAX_TOKENS = 16
"""``max_tokens`` of a ``/v1/completions`` body that leaves it out (OpenAI's default; vLLM's too)."""

# Sampling fields a vLLM server takes from generation_config.json when a body leaves them out
# (vllm ModelConfig.get_diff_sampling_param; generation_config.json's max_new_tokens is its max_tokens).
SERVER_DEFAULT_FIELDS = ("repetition_penalty", "presence_penalty", "frequency_penalty", "temperature", "top_k",
                         "top_p", "min_p", "max_new_tokens")

Kind = Literal["input", "served_model", "setting", "output", "fixed"]


@dataclass(frozen=True)
class BodyKey:
    """How one request-body key is used. ``setting``: a token-affecting ``SamplingParams`` field (``field``
    when renamed); ``output``: changes what is returned, not the tokens; ``fixed``: accepted only at one
    of ``neutral`` (it changes the prompt or the decoding in a way compare does not reproduce)."""

    kind: Kind
    endpoints: tuple[str, ...] = ENDPOINTS
    field: str | None = None
    neutral: tuple[Any, ...] = (None,)
    why: str = ""


_CHAT = (CHAT_URL,)
_COMPLETIONS = (COMPLETIONS_URL,)
_PROMPT = "changes the prompt vLLM builds; compare builds every prompt one way (the model's chat template with " \
          "add_generation_prompt, as a server does by default)"

BODY_KEYS: dict[str, BodyKey] = {
    "messages": BodyKey("input", _CHAT),
    "prompt": BodyKey("input", _COMPLETIONS),
    "model": BodyKey("served_model"),
    **{name: BodyKey("setting") for name in (
        "max_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
        "frequency_penalty", "seed", "stop", "stop_token_ids", "ignore_eos", "min_tokens", "logit_bias", "bad_words",
        "n", "allowed_token_ids", "structured_outputs", "thinking_token_budget", "prompt_logprobs",
        "repetition_detection",
    )},
    "max_completion_tokens": BodyKey("setting", _CHAT, field="max_tokens"),
    **{name: BodyKey("output") for name in (
        "logprobs", "logprob_token_ids", "include_stop_str_in_output", "skip_special_tokens",
        "spaces_between_special_tokens", "stream", "stream_options", "stream_interval", "user", "priority",
        "request_id", "session_id", "cache_salt", "return_tokens_as_token_ids", "return_token_ids",
        "return_token_offsets", "return_mm_kwargs", "watermarking", "routed_experts_prompt_start",
        "kv_transfer_params", "ec_transfer_params", "truncation_side", "length_penalty",
    )},
    **{name: BodyKey("output", _CHAT) for name in (
        "top_logprobs", "include_reasoning", "parallel_tool_calls", "return_prompt_text",
    )},
    "echo": BodyKey("fixed", neutral=(None, False), why="returns the prompt with the answer"),
    "add_special_tokens": BodyKey("fixed", neutral=(None, False), endpoints=_CHAT, why=_PROMPT),
    "add_generation_prompt": BodyKey("fixed", _CHAT, neutral=(None, True), why=_PROMPT),
    "continue_final_message": BodyKey("fixed", _CHAT, neutral=(None, False), why=_PROMPT),
    "chat_template": BodyKey("fixed", _CHAT, why=_PROMPT),
    "chat_template_kwargs": BodyKey("fixed", _CHAT, neutral=(None, {}), why=_PROMPT),
    "documents": BodyKey("fixed", _CHAT, neutral=(None, []), why=_PROMPT),
    "tools": BodyKey("fixed", _CHAT, neutral=(None, []), why=_PROMPT),
    "tool_choice": BodyKey("fixed", _CHAT, neutral=(None, "none", "auto"), why=_PROMPT),
    "reasoning_effort": BodyKey("fixed", _CHAT, why=_PROMPT),
    "mm_processor_kwargs": BodyKey("fixed", _CHAT, neutral=(None, {}),
                                   why="image settings; give them to both sides with --mm-processor-kwargs"),
    "media_io_kwargs": BodyKey("fixed", _CHAT, neutral=(None, {}), why="changes how images are read"),
    "mm_payload": BodyKey("fixed", why="pre-processed media; compare sends images from the messages"),
    "truncate_prompt_tokens": BodyKey("fixed", why="cuts the prompt; compare sends the whole prompt"),
    "response_format": BodyKey("fixed", neutral=(None, {"type": "text"}),
                               why="constrains decoding (structured outputs), which generate() cannot reproduce"),
    "use_beam_search": BodyKey("fixed", neutral=(None, False), why="compare checks greedy decoding"),
    "vllm_xargs": BodyKey("fixed", neutral=(None, {}), why="read only by vLLM plugins"),
    "suffix": BodyKey("fixed", _COMPLETIONS, neutral=(None, ""), why="inserts text after the answer"),
    "prompt_embeds": BodyKey("fixed", _COMPLETIONS, why="compare sends token ids, not embeddings"),
}
"""Every key of vLLM's ``ChatCompletionRequest``/``CompletionRequest`` (a test checks them against the
installed vLLM) and how compare uses it."""
# /v1/completions keeps add_special_tokens=True (the default there): compare adds them to a plain prompt too.
_COMPLETIONS_ADD_SPECIAL = BodyKey("fixed", _COMPLETIONS, neutral=(None, True), why=_PROMPT)


class BatchRequest(BaseModel):
    """One line of an OpenAI batch file: where it is, its request, and its token-affecting settings."""

    custom_id: str
    line: int
    settings: dict[str, Any] = Field(
        description="Token-affecting settings as SamplingParams fields, as stated (endpoint defaults filled in)."
    )
    request: ChatRequest


class OpenAIBatch(BaseModel):
    """A whole OpenAI batch file: one endpoint, one set of settings shared by every request."""

    path: Path
    url: str
    requests: list[BatchRequest]
    settings: dict[str, Any] = Field(description="The settings every request states (SamplingParams fields).")

    def chat_requests(self) -> list[ChatRequest]:
        return [r.request for r in self.requests]

    def where(self, index: int = 0) -> str:
        """``file:line (custom_id 'x')`` of one request, for messages."""
        req = self.requests[index]
        return f"{self.path}:{req.line} (custom_id {req.custom_id!r})"


def is_batch_line(raw: object) -> bool:
    """Whether a parsed line is an OpenAI batch line (it has ``custom_id`` and ``body``)."""
    return isinstance(raw, dict) and "custom_id" in raw and "body" in raw


def first_line_is_batch(text: str) -> bool:
    """Detection, per file: the first non-blank line is a JSON object with ``custom_id`` and ``body``."""
    for line in text.split("\n"):
        if line.strip():
            try:
                return is_batch_line(json.loads(line))
            except json.JSONDecodeError:
                return False
    return False


def read_openai_batch(path: str | Path) -> OpenAIBatch | None:
    """The batch file at ``path``, or None when it is a plain prompt file."""
    path = Path(path)
    text = read_prompt_file(path)
    return parse_openai_batch(path, text) if first_line_is_batch(text) else None


def parse_openai_batch(path: Path, text: str) -> OpenAIBatch:
    """Parse and check a whole batch file; any bad line raises ``InputError`` naming ``file:line``."""
    requests: list[BatchRequest] = []
    seen: dict[str, int] = {}
    url: str | None = None
    first_line = 0
    for lineno, raw in json_object_lines(path, text):
        first_line = first_line or lineno
        where = f"{path}:{lineno}"
        if "custom_id" not in raw and "body" not in raw:
            raise InputError(f"{where}: not an OpenAI batch line (no \"custom_id\" or \"body\"), but line {first_line} "
                             "is one; one format per file: write every line as a batch line or split the file")
        request = _parse_line(raw, where, lineno)
        line_url = raw["url"]
        if url is None:
            url = line_url
        elif line_url != url:
            raise InputError(f"{where}: url {line_url!r}, but line {first_line} has {url!r}; a batch file is for one "
                             "endpoint (as an OpenAI batch is): split the file by url")
        if request.custom_id in seen:
            raise InputError(f"{where}: duplicate custom_id {request.custom_id!r} (first on line "
                             f"{seen[request.custom_id]})")
        seen[request.custom_id] = lineno
        requests.append(request)
    if not requests or url is None:
        raise InputError(f"{path}: no requests in file")
    _check_same_settings(path, requests)
    return OpenAIBatch(path=path, url=url, requests=requests, settings=requests[0].settings)


def _parse_line(raw: dict[str, Any], where: str, lineno: int) -> BatchRequest:
    from hf2vllm import checks

    checks.known_keys(raw, where, LINE_KEYS, what="batch line key")
    for key in LINE_KEYS:
        if key not in raw:
            raise InputError(f"{where}: missing {key!r} (a batch line has {', '.join(LINE_KEYS)})")
    custom_id = raw["custom_id"]
    if not isinstance(custom_id, str) or not custom_id:
        raise InputError(f"{where}: custom_id must be a non-empty string, got {custom_id!r}")
    if raw["method"] != "POST":
        raise InputError(f"{where}: method {raw['method']!r}; batch requests are \"POST\"")
    if not isinstance(raw["url"], str):
        raise InputError(f"{where}: url must be a string: {' or '.join(ENDPOINTS)}")
    checks.choice(raw["url"], f"{where}: url", ENDPOINTS)
    body = raw["body"]
    if not isinstance(body, dict):
        raise InputError(f"{where}: body must be a JSON object (the request), got {type(body).__name__}")
    url = raw["url"]
    if ("messages" in body) == ("prompt" in body):
        raise InputError(f"{where}: give exactly one of body.messages ({CHAT_URL}) or body.prompt ({COMPLETIONS_URL})")
    wanted = "messages" if url == CHAT_URL else "prompt"
    if wanted not in body:
        raise InputError(f"{where}: url {url} takes body.{wanted}, this body has the other one")
    _check_body_keys(body, url, where)
    if url == COMPLETIONS_URL and not isinstance(body["prompt"], str):
        raise InputError(f"{where}: body.prompt must be one string (a list of prompts or token ids: one request per "
                         "line)")
    metadata: dict[str, Any] = {"url": url}
    if body.get("model") is not None:
        metadata["model"] = body["model"]
    try:
        request = ChatRequest(id=custom_id, messages=body.get("messages"), prompt=body.get("prompt"),
                              metadata=metadata)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        raise InputError(f"{where}: {msg}{f' (at body.{loc})' if loc else ''}") from None
    return BatchRequest(custom_id=custom_id, line=lineno, settings=_settings(body, url, where), request=request)


def _check_body_keys(body: dict[str, Any], url: str, where: str) -> None:
    from hf2vllm import checks

    for key, value in body.items():
        rule = _rule(key, url)
        if rule is None:
            other = next((u for u in ENDPOINTS if u != url), url)
            if _rule(key, other) is not None:
                raise InputError(f"{where}: body.{key} is a {other} key; this line's url is {url}")
            known = [k for k in BODY_KEYS if _rule(k, url) is not None]
            checks.known_keys([key], f"{where}: body", known, what="key")
        elif rule.kind == "fixed" and not any(value == n if n is not None else value is None for n in rule.neutral):
            shown = ", ".join(json.dumps(n) for n in rule.neutral if n is not None) or "null"
            raise InputError(f"{where}: body.{key}={json.dumps(value)}: compare cannot reproduce it ({rule.why}); "
                             f"leave it out or set it to {shown}")


def _rule(key: str, url: str) -> BodyKey | None:
    if key == "add_special_tokens" and url == COMPLETIONS_URL:
        return _COMPLETIONS_ADD_SPECIAL
    rule = BODY_KEYS.get(key)
    return rule if rule is not None and url in rule.endpoints else None


def _settings(body: dict[str, Any], url: str, where: str) -> dict[str, Any]:
    """The body's token-affecting settings as SamplingParams fields; null, [] and {} mean "not set"."""
    settings: dict[str, Any] = {}
    for key, value in body.items():
        rule = _rule(key, url)
        if rule is None or rule.kind != "setting" or value is None or value == [] or value == {}:
            continue
        settings[rule.field or key] = [value] if key == "stop" and isinstance(value, str) else value
    both = [body.get(k) for k in ("max_tokens", "max_completion_tokens")]
    if None not in both and both[0] != both[1]:
        raise InputError(f"{where}: body.max_tokens={both[0]} and body.max_completion_tokens={both[1]} disagree; "
                         "give one (vLLM uses max_completion_tokens)")
    if both[1] is not None:
        settings["max_tokens"] = both[1]
    if url == COMPLETIONS_URL and "max_tokens" not in body:
        settings["max_tokens"] = OPENAI_COMPLETIONS_MAX_TOKENS
    return settings


_NOT_SET = object()


def _check_same_settings(path: Path, requests: list[BatchRequest]) -> None:
    first = requests[0]
    for other in requests[1:]:
        if other.settings == first.settings:
            continue
        names = [*first.settings, *(k for k in other.settings if k not in first.settings)]
        name = next(k for k in names if first.settings.get(k, _NOT_SET) != other.settings.get(k, _NOT_SET))
        a, b = (json.dumps(r.settings[name]) if name in r.settings else "not set" for r in (first, other))
        raise InputError(
            f"{path}: requests {first.custom_id!r} (line {first.line}) and {other.custom_id!r} (line {other.line}) "
            f"have different settings: {name} {a} vs {b}; compare runs one setting for every request, so split the "
            "file by settings and compare each part"
        )


def server_defaults(model_path: Path) -> dict[str, Any]:
    """The sampling defaults a vLLM server (``--generation-config auto``) takes from the model's
    ``generation_config.json`` for fields a request leaves out, as SamplingParams fields."""
    from hf2vllm.spec import load_generation_config

    if not (Path(model_path) / "generation_config.json").is_file():
        return {}
    config = load_generation_config(model_path)
    found = {k: config[k] for k in SERVER_DEFAULT_FIELDS if config.get(k) is not None}
    if "max_new_tokens" in found:
        found["max_tokens"] = found.pop("max_new_tokens")
    return found


def batch_spec(batch: OpenAIBatch, model_path: Path, *, max_new_tokens: int) -> GenerationSpec:
    """The one ``GenerationSpec`` of a compare run over ``batch``, as a vLLM server runs its bodies.

    Each field comes from the bodies, else the model's ``generation_config.json`` (``server_defaults``),
    else OpenAI's default; ``max_tokens`` left out of a chat body (a server then generates up to the end
    of the context) becomes ``max_new_tokens``. ``translate_vllm`` resolves the result (eos ids included)
    and refuses what ``generate()`` cannot reproduce. Sampling is refused (token-by-token parity needs
    greedy decoding), except temperature > 0 with top_k = 1, which keeps only the top token: greedy.
    """
    from hf2vllm.translation import translate_vllm

    defaults = server_defaults(model_path)
    kwargs = {**defaults, **batch.settings}
    kwargs.setdefault("max_tokens", max_new_tokens)
    try:
        spec = translate_vllm(kwargs, model=model_path).spec
    except HF2VLLMError as err:
        raise type(err)(f"{batch.where()}: body settings: {err}") from None
    except (ValueError, TypeError) as err:  # e.g. a logit_bias key that is not a token id
        raise InputError(f"{batch.where()}: body settings: {err}") from None
    if spec.do_sample and spec.top_k == 1 and spec.n == 1:
        spec = GenerationSpec.checked(**{**spec.model_dump(), "do_sample": False, "temperature": 1.0, "top_k": None,
                                         "top_p": 1.0, "min_p": 0.0})
    if spec.do_sample:
        raise InputError(f"{batch.path}: {_why_sampling(batch, defaults)}, so vLLM samples; compare checks "
                         "token-by-token parity, which needs greedy decoding: set \"temperature\": 0 in every body "
                         "(`hf2vllm translate --vllm '{...}' --model DIR` shows the generate() equivalent of "
                         "sampling settings)")
    return spec


def _why_sampling(batch: OpenAIBatch, defaults: dict[str, Any]) -> str:
    if "temperature" in batch.settings:
        return f"the bodies set \"temperature\": {batch.settings['temperature']}"
    if "temperature" in defaults:
        return (f"the bodies do not set \"temperature\", and the model's generation_config.json gives "
                f"temperature={defaults['temperature']}")
    return "the bodies do not set \"temperature\", and OpenAI's default is 1"


def prompt_file_spec(
    path: str | Path, model_path: Path, run_spec: GenerationSpec, *, explicit: bool, length_given: bool = False,
) -> GenerationSpec:
    """The spec a compare run uses with the prompt file at ``path``.

    A plain prompt file states no settings: ``run_spec``. A batch file's settings (``batch_spec``) replace
    ``run_spec`` when it is compare's default (built from ``max_new_tokens``, which stays the length for
    chat bodies without ``max_tokens``); when the user gave settings (``explicit``: ``--hf-kwargs`` or
    ``--generation-config``), both must agree, else ``InputError`` naming the first setting that differs.
    ``length_given``: ``--max-new-tokens`` was typed, so bodies that set another ``max_tokens`` are refused too.
    """
    batch = read_openai_batch(path)
    if batch is None:
        return run_spec
    spec = batch_spec(batch, model_path, max_new_tokens=run_spec.max_new_tokens)
    if length_given and not explicit and spec.max_new_tokens != run_spec.max_new_tokens:
        raise InputError(
            f"{batch.path}: the bodies set max_tokens={spec.max_new_tokens}, --max-new-tokens gives "
            f"{run_spec.max_new_tokens}; a run has one length: leave --max-new-tokens out (the file's is used) "
            "or make them agree"
        )
    if not explicit:
        return spec
    ours, theirs = (s.canonical().model_dump(exclude={"logprobs"}) for s in (spec, run_spec))
    for name, value in ours.items():
        if theirs[name] != value:
            raise InputError(
                f"{batch.path}: the bodies' settings give {name}={value!r}, --hf-kwargs/--generation-config give "
                f"{name}={theirs[name]!r}; a run has one setting: leave --hf-kwargs/--generation-config out (the "
                "file's settings are used) or make them agree"
            )
    return run_spec


__all__ = ["BODY_KEYS", "BatchRequest", "OpenAIBatch", "batch_spec", "first_line_is_batch", "is_batch_line",
           "parse_openai_batch", "prompt_file_spec", "read_openai_batch", "server_defaults"]
