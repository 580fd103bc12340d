"""YAML files -> ``vllm serve`` invocations, with line numbers from PyYAML's node marks.

Three shapes are recognised: a vLLM ``--config`` file (top-level keys are serve flags), a container
spec whose ``command``/``args`` lists spell out ``vllm serve ...``, and any string scalar holding a
``vllm serve`` command line (compose ``command: vllm serve ...``, CI ``run: |`` blocks).
"""

from __future__ import annotations

import shlex

import yaml

from hf2vllm.doctor.serve import (
    VLLM_SERVER_IMAGE,
    FlagValue,
    ServeInvocation,
    Token,
    find_serve_start,
    normalise_flag_name,
    parse_serve_args,
)
from hf2vllm.doctor.shell import parse_shell

# Keys that only a vLLM serve config has; one of them marks a top-level mapping as a config file.
CONFIG_MARKER_KEYS = frozenset(
    {
        "tensor-parallel-size", "pipeline-parallel-size", "data-parallel-size", "max-model-len",
        "gpu-memory-utilization", "enforce-eager", "enable-prefix-caching", "no-enable-prefix-caching",
        "reasoning-parser", "served-model-name", "max-num-seqs", "max-num-batched-tokens", "kv-cache-dtype",
        "limit-mm-per-prompt", "enable-chunked-prefill", "tool-call-parser", "swap-space",
    }
)


def _scalar_text(node: yaml.Node) -> str:
    value = str(node.value)
    if node.tag.endswith(":bool"):
        return value.lower()
    return value


def _config_invocation(node: yaml.MappingNode, lines: list[str]) -> ServeInvocation | None:
    keys = {normalise_flag_name(str(k.value)): (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
    if not CONFIG_MARKER_KEYS & keys.keys():
        return None
    inv = ServeInvocation(line=node.start_mark.line + 1, column=node.start_mark.column + 1,
                          end_line=node.end_mark.line + 1, origin="yaml")
    for name, (key_node, value_node) in keys.items():
        line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
        text = _scalar_text(value_node) if isinstance(value_node, yaml.ScalarNode) else ""
        inv.flags[name] = FlagValue(text, line, column)
        if name == "model":
            inv.model, inv.model_line = text, line
        raw = lines[line - 1]
        if "#" in raw:
            inv.comments.append(raw[raw.index("#"):])
        above = line - 1
        while above >= 1 and lines[above - 1].lstrip().startswith("#"):
            inv.comments.append(lines[above - 1].strip())
            above -= 1
    return inv


def _sequence_tokens(node: yaml.SequenceNode) -> list[Token] | None:
    if not all(isinstance(item, yaml.ScalarNode) for item in node.value):
        return None
    return [Token(str(item.value), item.start_mark.line + 1, item.start_mark.column + 1) for item in node.value]


def _container_env(pairs: dict[str, yaml.Node]) -> dict[str, str]:
    """Kubernetes ``env: [{name, value}]`` or compose ``environment:`` (mapping or ``KEY=VALUE`` list)."""
    env: dict[str, str] = {}
    for key in ("env", "environment"):
        node = pairs.get(key)
        if isinstance(node, yaml.MappingNode):
            env.update({str(k.value): str(getattr(v, "value", "")) for k, v in node.value})
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                if isinstance(item, yaml.MappingNode):
                    fields = {str(k.value): v for k, v in item.value}
                    name, value = fields.get("name"), fields.get("value")
                    if isinstance(name, yaml.ScalarNode):
                        env[str(name.value)] = str(value.value) if isinstance(value, yaml.ScalarNode) else ""
                elif isinstance(item, yaml.ScalarNode) and "=" in str(item.value):
                    k, _, v = str(item.value).partition("=")
                    env[k] = v
    return env


def _walk(node: yaml.Node, lines: list[str], out: list[ServeInvocation], top: bool) -> None:
    if isinstance(node, yaml.MappingNode):
        if top and (inv := _config_invocation(node, lines)) is not None:
            out.append(inv)
            return
        pairs = {str(k.value): v for k, v in node.value if isinstance(k, yaml.ScalarNode)}
        command, args = pairs.get("command"), pairs.get("args")
        if isinstance(command, yaml.SequenceNode):
            tokens = _sequence_tokens(command) or []
            if isinstance(args, yaml.SequenceNode):
                tokens += _sequence_tokens(args) or []
            start = find_serve_start([t.text for t in tokens])
            if start is not None:
                inv = ServeInvocation(line=tokens[0].line, column=tokens[0].column, end_line=tokens[-1].line,
                                      origin="yaml", env=_container_env(pairs))
                parse_serve_args(tokens, start, inv)
                out.append(inv)
                return
        image = pairs.get("image")
        if isinstance(image, yaml.ScalarNode) and VLLM_SERVER_IMAGE.match(str(image.value)) and \
                (inv := _image_invocation(pairs, lines)) is not None:
            out.append(inv)
            return
        for _key, value in node.value:
            _walk(value, lines, out, top=False)
    elif isinstance(node, yaml.SequenceNode):
        tokens = _sequence_tokens(node)
        if tokens and (start := find_serve_start([t.text for t in tokens])) is not None:
            inv = ServeInvocation(line=tokens[0].line, column=tokens[0].column, end_line=tokens[-1].line,
                                  origin="yaml")
            parse_serve_args(tokens, start, inv)
            out.append(inv)
            return
        for item in node.value:
            _walk(item, lines, out, top=False)
    elif isinstance(node, yaml.ScalarNode) and isinstance(node.value, str) and "vllm" in node.value:
        # Block scalars (``|``/``>``) start their text on the line after the indicator.
        offset = node.start_mark.line + (1 if node.style in ("|", ">") else 0)
        script = parse_shell(node.value)
        for inv in script.invocations:
            inv.line += offset
            inv.end_line += offset
            if inv.model_line is not None:
                inv.model_line += offset
            inv.flags = {k: FlagValue(v.value, v.line + offset, v.column) for k, v in inv.flags.items()}
            inv.origin = "yaml"
            out.append(inv)


def _scalar_tokens(node: yaml.ScalarNode, lines: list[str]) -> list[Token]:
    """Words of a compose ``command: --model x --flag y`` string, each located in the file."""
    tokens: list[Token] = []
    line, column = node.start_mark.line, 0
    for word in shlex.split(str(node.value), comments=False):
        for no in range(line, len(lines)):
            found = lines[no].find(word, column if no == line else 0)
            if found >= 0:
                line, column = no, found + len(word)
                tokens.append(Token(word, no + 1, found + 1))
                break
        else:
            tokens.append(Token(word, node.start_mark.line + 1, node.start_mark.column + 1))
    return tokens


def _image_invocation(pairs: dict[str, yaml.Node], lines: list[str]) -> ServeInvocation | None:
    """A compose service (or Kubernetes container) running a vLLM server image: entrypoint + command are
    the image's serve arguments."""
    tokens: list[Token] = []
    for key in ("entrypoint", "command", "args"):
        node = pairs.get(key)
        if isinstance(node, yaml.SequenceNode):
            tokens += _sequence_tokens(node) or []
        elif isinstance(node, yaml.ScalarNode) and str(node.value).strip():
            try:
                tokens += _scalar_tokens(node, lines)
            except ValueError:
                return None
    if not tokens:
        return None
    start = find_serve_start([t.text for t in tokens])
    if start is None:
        start = 0
    inv = ServeInvocation(line=tokens[0].line, column=tokens[0].column, end_line=tokens[-1].line, origin="yaml",
                          env=_container_env(pairs), image=str(pairs["image"].value))  # type: ignore[union-attr]
    parse_serve_args(tokens, start, inv)
    return inv


def parse_yaml_invocations(text: str) -> list[ServeInvocation]:
    """Every ``vllm serve`` launch described by a YAML file (all documents of it)."""
    lines = text.splitlines()
    out: list[ServeInvocation] = []
    for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
        if document is not None:
            _walk(document, lines, out, top=True)
    return out
