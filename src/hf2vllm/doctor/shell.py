"""Shell launch scripts -> simple commands with token positions, using ``shlex`` (never regexes over code).

Handles what launch scripts really contain: ``\\`` continuations, comments, ``export``, ``VAR=x cmd``
prefixes, ``&``/``&&``/``;``/``|`` chains, redirections, heredocs and ``for``/``while`` loops (a
``vllm serve`` inside a loop starts several servers).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from hf2vllm.doctor.serve import FlagValue, ServeInvocation, Token, find_serve_start, parse_serve_args

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")
_SEPARATORS = {";", "&", "&&", "||", "|", ";;", "|&"}
# Parentheses come from subshells and from ``$(...)``/``$((...))`` inside arguments; splitting there
# would cut a command in two, so they are dropped instead.
_PARENS = {"(", ")", "((", "))", "()", "$(", "$(("}
_REDIRECTS = {">", ">>", "<", ">&", "&>", "<&", ">|", "&>>", "<<<"}
_LEADING_KEYWORDS = {"do", "then", "else", "elif", "{", "}", "time", "!", "exec", "nohup", "command", "if"}


@dataclass
class ShellCommand:
    """One simple command: its words (env assignments and keywords stripped) and its env prefix."""

    tokens: list[Token]
    env: dict[str, str]
    in_loop: bool
    comments: list[str]

    @property
    def words(self) -> list[str]:
        return [t.text for t in self.tokens]

    def flag_value(self, *names: str) -> str | None:
        """Value of ``--name value`` / ``--name=value`` for any of ``names`` (dash/underscore-insensitive)."""
        wanted = {n.replace("_", "-") for n in names}
        words = self.words
        for i, word in enumerate(words):
            if not word.startswith("--"):
                continue
            name, eq, value = word[2:].partition("=")
            if name.replace("_", "-") in wanted:
                if eq:
                    return value
                return words[i + 1] if i + 1 < len(words) else ""
        return None


@dataclass
class ShellScript:
    commands: list[ShellCommand] = field(default_factory=list)
    invocations: list[ServeInvocation] = field(default_factory=list)
    exported: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)


def _line_tokens(text: str, line_no: int) -> list[Token]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens: list[Token] = []
    cursor = 0
    for word in lexer:
        found = text.find(word, cursor)
        column = (found if found >= 0 else cursor) + 1
        cursor = found + len(word) if found >= 0 else cursor
        tokens.append(Token(word, line_no, column))
    return tokens


def _logical_lines(lines: list[str]) -> list[tuple[list[Token], list[int]]]:
    """Tokens of each logical line (continuations joined) with the physical line numbers it spans."""
    out: list[tuple[list[Token], list[int]]] = []
    pending: list[Token] = []
    span: list[int] = []
    quote_buffer: list[str] = []
    quote_start = 0
    heredoc_end: str | None = None
    for idx, raw in enumerate(lines, start=1):
        if heredoc_end is not None:
            if raw.strip() == heredoc_end:
                heredoc_end = None
            continue
        text = raw.rstrip("\n")
        if quote_buffer:
            quote_buffer.append(text)
            joined = "\n".join(quote_buffer)
            try:
                toks = _line_tokens(joined, quote_start)
            except ValueError:
                continue
            quote_buffer = []
            pending.extend(toks)
            span.append(idx)
            if not text.rstrip().endswith("\\"):
                out.append((pending, span))
                pending, span = [], []
            continue
        continued = text.rstrip().endswith("\\") and not text.lstrip().startswith("#")
        body = text.rstrip()[:-1] if continued else text
        if (match := _HEREDOC.search(body)) is not None:
            heredoc_end = match.group(1)
        try:
            toks = _line_tokens(body, idx)
        except ValueError:  # a quote closes on a later line
            quote_buffer, quote_start = [body], idx
            span.append(idx)
            continue
        pending.extend(toks)
        span.append(idx)
        if not continued:
            out.append((pending, span))
            pending, span = [], []
    if pending:
        out.append((pending, span))
    return out


def _comments_around(lines: list[str], first: int, last: int) -> list[str]:
    """Comment text on the command's own lines and in the comment block directly above it."""
    found: list[str] = []
    for no in range(first, last + 1):
        raw = lines[no - 1]
        if "#" in raw:
            found.append(raw[raw.index("#"):])
    no = first - 1
    while no >= 1 and lines[no - 1].lstrip().startswith("#"):
        found.append(lines[no - 1].strip())
        no -= 1
    return found


def parse_shell(text: str) -> ShellScript:
    """Parse a launch script into commands and ``vllm serve`` invocations."""
    lines = text.splitlines()
    script = ShellScript()
    loop_depth = 0
    for tokens, span in _logical_lines(lines):
        segments: list[list[Token]] = [[]]
        for tok in tokens:
            if tok.text in _PARENS or set(tok.text) <= {"(", ")"}:
                continue
            if tok.text in _SEPARATORS:
                segments.append([])
            else:
                segments[-1].append(tok)
        for seg in segments:
            seg = _strip_redirections(seg)
            while seg and seg[0].text in _LEADING_KEYWORDS:
                seg = seg[1:]
            if not seg:
                continue
            head = seg[0].text
            if head in {"for", "select"}:
                loop_depth += 1
                continue
            if head in {"while", "until"}:
                loop_depth += 1
                continue
            if head == "done":
                loop_depth = max(0, loop_depth - 1)
                continue
            env: dict[str, str] = {}
            if head == "export":
                for tok in seg[1:]:
                    if _ASSIGNMENT.match(tok.text):
                        key, _, value = tok.text.partition("=")
                        script.exported[key] = value
                        script.variables[key] = value
                    elif tok.text in script.variables:
                        script.exported[tok.text] = script.variables[tok.text]
                continue
            if head == "env":
                seg = seg[1:]
            while seg and _ASSIGNMENT.match(seg[0].text):
                key, _, value = seg[0].text.partition("=")
                env[key] = value
                seg = seg[1:]
            if not seg:
                # A bare ``VAR=value`` line sets a shell variable: usable in later arguments, but child
                # processes (vllm) see it only once exported.
                script.variables.update(env)
                continue
            comments = _comments_around(lines, seg[0].line, span[-1])
            command = ShellCommand(seg, env, loop_depth > 0, comments)
            script.commands.append(command)
            start = find_serve_start(command.words)
            if start is not None:
                inv = ServeInvocation(line=seg[0].line, column=seg[0].column, end_line=seg[-1].line,
                                      env={**script.exported, **env}, in_loop=loop_depth > 0,
                                      comments=comments, origin="shell")
                parse_serve_args(seg, start, inv)
                _expand_variables(inv, {**script.variables, **inv.env})
                script.invocations.append(inv)
    return script


_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def _expand_variables(inv: ServeInvocation, variables: dict[str, str]) -> None:
    """Resolve ``$MODEL``/``${MAX_LEN}`` from assignments made earlier in the script (others stay as written)."""

    def expand(text: str) -> str:
        return _VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), text)

    if inv.model is not None:
        inv.model = expand(inv.model)
    inv.flags = {name: FlagValue(expand(v.value), v.line, v.column) for name, v in inv.flags.items()}


def _strip_redirections(seg: list[Token]) -> list[Token]:
    out: list[Token] = []
    skip_next = False
    for i, tok in enumerate(seg):
        if skip_next:
            skip_next = False
            continue
        if tok.text in _REDIRECTS:
            skip_next = True
            continue
        nxt = seg[i + 1] if i + 1 < len(seg) else None
        # ``2>&1`` names a file descriptor; ``--tensor-parallel-size 2 >log`` passes 2 as a value.
        if tok.text.isdigit() and nxt is not None and nxt.text in _REDIRECTS and nxt.line == tok.line \
                and nxt.column == tok.column + len(tok.text):
            continue
        out.append(tok)
    return out
