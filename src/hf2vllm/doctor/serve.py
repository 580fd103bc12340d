"""``vllm serve`` invocations, whatever file they were written in (shell script, YAML, Python list).

Shell scripts, vLLM ``--config`` YAML files, Kubernetes/compose ``command``/``args`` lists and Python
``subprocess`` argument lists all reduce to the same ``ServeInvocation``, so each server rule is
written once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePath

# Flags that take no value on the ``vllm serve`` command line. Any other ``--flag`` consumes the
# next token unless that token is itself a flag.
BOOLEAN_FLAGS = frozenset(
    {
        "enforce-eager", "trust-remote-code", "enable-prefix-caching", "no-enable-prefix-caching",
        "enable-chunked-prefill", "no-enable-chunked-prefill", "disable-log-requests", "disable-log-stats",
        "enable-lora", "enable-auto-tool-choice", "disable-custom-all-reduce", "enable-log-requests",
        "no-enable-log-requests", "headless", "api-server-count-auto", "enable-expert-parallel",
        "disable-frontend-multiprocessing", "enable-prompt-tokens-details", "enable-server-load-tracking",
        "enable-sleep-mode", "enable-request-id-headers", "enable-force-include-usage",
        "disable-fastapi-docs", "disable-sliding-window", "disable-cascade-attn", "skip-tokenizer-init",
        "async-scheduling", "no-async-scheduling",
    }
)

SHORT_FLAG_ALIASES = {"-tp": "tensor-parallel-size", "-pp": "pipeline-parallel-size", "-dp": "data-parallel-size",
                      "-q": "quantization"}

_TRUE = {"", "true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Token:
    """A word of a command line with where it was written (1-based)."""

    text: str
    line: int
    column: int


@dataclass(frozen=True)
class FlagValue:
    """A flag as written: ``value`` is ``""`` for a bare boolean flag."""

    value: str
    line: int
    column: int


@dataclass
class ServeInvocation:
    """One ``vllm serve`` (or OpenAI api_server module) launch with its flags, model and environment."""

    line: int
    column: int
    end_line: int
    model: str | None = None
    model_line: int | None = None
    flags: dict[str, FlagValue] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    in_loop: bool = False
    comments: list[str] = field(default_factory=list)
    origin: str = "shell"
    image: str | None = None  # ``vllm/vllm-openai:v0.8.5`` when launched from a server image

    @property
    def image_version(self) -> tuple[int, ...] | None:
        """The vLLM version an image tag names (``v0.8.5`` -> (0, 8, 5)); None for ``latest`` or no image."""
        match = re.search(r":v?(\d+)\.(\d+)(?:\.(\d+))?", self.image or "")
        return tuple(int(g) for g in match.groups() if g is not None) if match else None

    def flag(self, name: str) -> FlagValue | None:
        return self.flags.get(name)

    def bool_flag(self, name: str) -> bool | None:
        """``--name``/``--no-name``/``name: true`` -> True/False; None when not set."""
        if (neg := self.flags.get(f"no-{name}")) is not None and neg.value.lower() in _TRUE:
            return False
        if (pos := self.flags.get(name)) is None:
            return None
        value = pos.value.lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        return None

    def number(self, name: str) -> float | None:
        flag = self.flags.get(name)
        if flag is None:
            return None
        return parse_number(with_defaults(flag.value))


def parse_number(text: str) -> float | None:
    """Parse ``4096``, ``0.95``, ``32k``/``32K`` (vLLM accepts k/m suffixes for lengths)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmM]?)\s*", text)
    if match is None:
        return None
    scale = {"": 1, "k": 1000, "K": 1024, "m": 1_000_000, "M": 1024 * 1024}[match.group(2)]
    return float(match.group(1)) * scale


def normalise_flag_name(name: str) -> str:
    return name.lstrip("-").replace("_", "-").lower()


# The official server images run ``vllm serve`` (older tags: the OpenAI api_server module) as their
# entrypoint, so what follows the image name in ``docker run`` or a compose ``command:`` is serve flags.
VLLM_SERVER_IMAGE = re.compile(
    r"^(?:[\w.-]+(?::\d+)?/)*vllm/vllm-(?:openai|cpu|tpu|rocm)[\w.-]*(?::[\w.-]+)?(?:@\S+)?$")
_COMPOSE_DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}")


def with_defaults(text: str) -> str:
    """``${GPU_MEM:-0.9}`` -> ``0.9``: the value a shell or compose file uses when the variable is unset."""
    return _COMPOSE_DEFAULT.sub(lambda m: m.group(1), text)


def find_serve_start(words: list[str]) -> int | None:
    """Index of the first argument after ``vllm serve`` / ``-m vllm.entrypoints...`` / a vLLM server image
    in ``docker run``; None if absent."""
    for i, word in enumerate(words):
        if VLLM_SERVER_IMAGE.match(word) and any(w in ("run", "create") for w in words[:i]) and \
                PurePath(words[0]).name in ("docker", "podman", "nvidia-docker", "sudo"):
            return i + 1
        base = PurePath(word).name
        if base == "vllm" and i + 1 < len(words) and words[i + 1] == "serve":
            return i + 2
        if base.startswith("python") and i + 2 < len(words) and words[i + 1] == "-m" and (
            words[i + 2].startswith("vllm.entrypoints")
        ):
            return i + 3
    return None


def parse_serve_args(tokens: list[Token], start: int, invocation: ServeInvocation) -> None:
    """Fill ``invocation`` from the tokens after ``vllm serve``."""
    i = start
    if start > 0 and VLLM_SERVER_IMAGE.match(tokens[start - 1].text):
        invocation.image = tokens[start - 1].text
    if i < len(tokens) and not tokens[i].text.startswith("-"):
        invocation.model, invocation.model_line = with_defaults(tokens[i].text), tokens[i].line
        i += 1
    while i < len(tokens):
        tok = tokens[i]
        text = tok.text
        if text in SHORT_FLAG_ALIASES:
            name, value = SHORT_FLAG_ALIASES[text], None
        elif text.startswith("--"):
            name, _, value = text[2:].partition("=") if "=" in text else (text[2:], "", None)
            name = normalise_flag_name(name)
        else:
            i += 1
            continue
        if value is None:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if name in BOOLEAN_FLAGS or nxt is None or nxt.text.startswith("--"):
                value = ""
            else:
                value = nxt.text
                i += 1
        invocation.flags[name] = FlagValue(value, tok.line, tok.column)
        if name == "model" and value:
            invocation.model, invocation.model_line = with_defaults(value), tok.line
        i += 1
