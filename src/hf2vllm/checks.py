"""Checks at the edge: every user-given path, number, name and secret is checked before any model,
engine or server starts, and a bad one becomes one ``InputError`` line naming the option and the fix.

Commands call these first thing; library functions that take the same values call them too, so the
Python API refuses the same inputs the CLI does.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from hf2vllm.errors import InputError

# ---------------------------------------------------------------- paths


def output_file(path: Path | str | None, option: str, *, overwrite: bool = True) -> Path | None:
    """A file the command will write: its folder can be created and written, it is not a folder."""
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory; give a file path")
    if path.exists() and not overwrite:
        raise InputError(f"{option} {path}: already exists; remove it or choose another path")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{option} {path}: not writable")
    _creatable_parent(path, option)
    return path


def output_dir(path: Path | str | None, option: str) -> Path | None:
    """A folder the command will write into: not a file, and creatable/writable."""
    if path is None:
        return None
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: is a file; give a directory (the command writes several files there)")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{option} {path}: directory is not writable")
        return path
    _creatable_parent(path, option)
    return path


def _creatable_parent(path: Path, option: str) -> None:
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{option} {path}: {parent} is a file, so nothing can be created under it")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot create it ({parent} is not writable)")


def input_file(path: Path | str | None, option: str, *, what: str = "file") -> Path | None:
    """A file the command will read: exists, is a file, is readable."""
    if path is None:
        return None
    path = Path(path)
    if not path.exists():
        raise InputError(f"{option} {path}: no such {what}")
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory; give the {what} itself")
    if not os.access(path, os.R_OK):
        raise InputError(f"{option} {path}: not readable")
    return path


def read_text(path: Path, option: str) -> str:
    """A text file's content as UTF-8, or one line naming the file and the first bad byte."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{option} {path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
            "save it as UTF-8"
        ) from None
    except OSError as err:
        raise InputError(f"{option} {path}: cannot read it ({err.strerror or err})") from None


def json_file(path: Path, option: str) -> object:
    """A JSON file's value; not UTF-8, unreadable or not JSON is one line naming the option, file and line."""
    import json

    try:
        return json.loads(read_text(path, option))
    except json.JSONDecodeError as err:
        raise InputError(f"{option} {path}:{err.lineno}: not valid JSON ({err.msg})") from None


# ---------------------------------------------------------------- numbers


def number(value: float | int | None, option: str, *, minimum: float | None = None, maximum: float | None = None,
           exclusive_minimum: bool = False, meaning: str = "") -> float | int | None:
    """A number within a range that means something; NaN and infinities are refused."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{option}: {value} is not a finite number")
    low_bad = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    high_bad = maximum is not None and value > maximum
    if low_bad or high_bad:
        if minimum is not None and maximum is not None:
            want = (f"above {minimum:g} and at most {maximum:g}" if exclusive_minimum
                    else f"between {minimum:g} and {maximum:g}")
        elif minimum is not None:
            want = f"greater than {minimum:g}" if exclusive_minimum else f"{minimum:g} or more"
        else:
            want = f"{maximum:g} or less"
        hint = f" ({meaning})" if meaning else ""
        raise InputError(f"{option}: got {value:g}; expected {want}{hint}")
    return value


def positive(value: float | int | None, option: str, meaning: str = "") -> float | int | None:
    return number(value, option, minimum=0, exclusive_minimum=True, meaning=meaning)


def port(value: int | None, option: str = "--port", *, allow_zero: bool = True) -> int | None:
    if value is None:
        return None
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        zero = " (0 picks a free one)" if allow_zero else ""
        raise InputError(f"{option}: got {value}; a TCP port is {low} to 65535{zero}")
    return value


# ---------------------------------------------------------------- names


def choice(value: str | None, option: str, choices: Iterable[str]) -> str | None:
    """One of ``choices``; the error lists them and the closest one."""
    if value is None:
        return None
    known = list(choices)
    if value in known:
        return value
    import difflib

    close = difflib.get_close_matches(value, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InputError(f"{option}: unknown value {value!r}; choose one of {', '.join(known)}{hint}")


def known_keys(keys: Iterable[str], option: str, known: Iterable[str], *, what: str = "key", fix: str = "") -> None:
    """Every key is one of ``known``; the first that is not is refused with the closest known one."""
    import difflib

    names = sorted(set(known))
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else (f"; {fix}" if fix else "")
            raise InputError(f"{option}: unknown {what} {key!r}{hint}")


# ---------------------------------------------------------------- structured input


def json_object(text: str | Mapping | None, option: str, *, example: str = '{"key": 1}') -> dict | None:
    """An option's JSON object, written inline or as ``@file.json``; errors name the option (and the file).
    A mapping (given from the Python API) is already an object and is taken as it is."""
    import json

    if text is None:
        return None
    if isinstance(text, Mapping):
        return dict(text)
    where = option
    if text.startswith("@"):
        path = input_file(text[1:], option, what="JSON file")
        assert path is not None
        text = read_text(path, option)
        where = f"{option} {path}"
    if not text.strip():
        raise InputError(f"{where}: empty; give a JSON object such as '{example}'")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        at = f"line {err.lineno} column {err.colno}" if err.lineno > 1 else f"column {err.colno}"
        raise InputError(f"{where}: not valid JSON ({err.msg} at {at}); give a JSON object such as "
                         f"'{example}'") from None
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a JSON object such as '{example}', got a JSON {type(value).__name__}")
    return value


def model_config(model_dir: Path | str, option: str = "--model") -> dict:
    """A checkpoint directory's ``config.json`` as a dict, refused unless both libraries can read it
    (valid JSON, an object, a ``model_type``) and the directory holds a tokenizer."""
    import json

    model_dir = Path(model_dir)
    path = model_dir / "config.json"
    try:
        data = json.loads(read_text(path, option))
    except json.JSONDecodeError as err:
        raise InputError(f"{option} {model_dir}: config.json is not valid JSON ({err.msg} at line {err.lineno}); "
                         "restore it from the original checkpoint") from None
    if not isinstance(data, dict):
        raise InputError(f"{option} {model_dir}: config.json holds a JSON {type(data).__name__}, not an object; "
                         "restore it from the original checkpoint")
    if not isinstance(data.get("model_type"), str) or not data["model_type"]:
        raise InputError(f"{option} {model_dir}: config.json has no \"model_type\" (Transformers and vLLM pick the "
                         "architecture by it); restore it from the original checkpoint")
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    if not any((model_dir / name).is_file() for name in tokenizer_files):
        raise InputError(f"{option} {model_dir}: no tokenizer files ({', '.join(tokenizer_files)}); copy the "
                         "checkpoint's tokenizer into the directory")
    return data


# ---------------------------------------------------------------- secrets

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def api_key_env(name: str | None, option: str = "--api-key-env", *, required: bool = True) -> str | None:
    """The NAME of an environment variable holding a key. A value that is not a variable name (a pasted
    key) is refused without echoing it; a variable that is not set is named (it is only a name)."""
    if name is None:
        return None
    if not ENV_NAME.match(name) or looks_like_secret(name):
        raise InputError(
            f"{option} expects the NAME of an environment variable holding the key (e.g. VLLM_API_KEY), "
            "not the key itself; the value given is not repeated here. Run: export VLLM_API_KEY=...; "
            f"then pass {option} VLLM_API_KEY"
        )
    if required and not os.environ.get(name):
        raise InputError(f"{option} {name}: that environment variable is not set (or empty); export it first")
    return name


_SECRET_PREFIXES = ("sk-", "hf_", "ghp_", "gho_", "xoxb-", "xoxp-", "AKIA", "eyJ")


def looks_like_secret(value: str) -> bool:
    """A value shaped like a credential: a known key prefix, or a run of 24+ letters and digits with at
    least 4 of each (random keys are; names such as ``Idefics3ImageProcessorPil`` or model ids are not)."""
    if value.startswith(_SECRET_PREFIXES) and len(value) >= 12:
        return True
    return any(len(run) >= 24 and sum(c.isdigit() for c in run) >= 4 and sum(c.isalpha() for c in run) >= 4
               for run in re.split(r"[-_.:/]", value))


def public_url(url: str) -> str:
    """``url`` without credentials (``http://user:key@host`` -> ``http://***@host``): the only form of a
    URL that may reach a terminal, a log, a report or a benchmark file."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in url:  # no scheme: "user:key@host:8000/v1" would not parse as a netloc
        return re.sub(r"^[^/@\s]*@", "***@", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@\s]*@", "//***@", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def url_secrets(url: str | None) -> list[str]:
    """The user name and password inside ``url`` (``http://user:key@host``), to mask wherever they could
    be echoed (a server's error text, an exception): ``[]`` when it carries none."""
    from urllib.parse import unquote, urlsplit

    if not url:
        return []
    try:
        parts = urlsplit(url if "://" in url else f"//{url}")
        found = [parts.username, parts.password]
    except ValueError:
        return []
    return [v for s in found if s for v in dict.fromkeys((s, unquote(s)))]


def server_url(url: str, option: str = "URL", *, api_key_env: str | None = None) -> str:
    """An OpenAI server URL: ``http(s)://host[:port]/...``. Credentials inside it (``user:key@``) are
    allowed and sent as HTTP Basic auth (what httpx, aiohttp and curl do with them), but never shown;
    together with ``--api-key-env`` they are refused: both would set the one Authorization header."""
    from urllib.parse import urlsplit

    shown = public_url(url)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url) and not url.lower().startswith(("http://", "https://")):
        raise InputError(f"{option} {shown!r}: only http:// and https:// URLs are supported (an OpenAI-compatible "
                         "server, e.g. http://HOST:PORT/v1)")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"{option} {shown!r}: give the scheme, e.g. http://{shown.split('://')[-1]}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as err:
        raise InputError(f"{option} {shown!r}: not a valid URL ({mask_secrets(str(err), url_secrets(url))}); "
                         "expected http://HOST:PORT/v1") from None
    if not parts.hostname:
        raise InputError(f"{option} {shown!r}: no host name; expected http://HOST:PORT/v1")
    if api_key_env and (parts.username or parts.password):
        raise InputError(
            f"{option} {shown!r} carries credentials (user:key@) and --api-key-env is given too: give the key one "
            "way. vLLM's --api-key wants it from --api-key-env (sent as a Bearer token); URL credentials are "
            "sent as HTTP Basic auth (for a proxy in front of the server)"
        )
    return url


_CREDENTIAL_OPTION = re.compile(r"(^|_)(token|api_key|key|secret|password|passwd|auth|credentials?)$", re.IGNORECASE)
_SPECIAL_TOKEN_OPTION = re.compile(r"^(bos|eos|pad|unk|sep|cls|mask)_token$", re.IGNORECASE)


def public_options(options: object) -> object:
    """``options`` (a dict of load/engine options, nested) as it may be stored or shown: the string value
    of a credential-named option (``hf_token``, ``api_key``, ``password``...) becomes ``***`` and every
    other string loses URL credentials (``public_url``)."""
    if isinstance(options, dict):
        return {k: "***" if isinstance(v, str) and v and isinstance(k, str) and _CREDENTIAL_OPTION.search(k)
                and not _SPECIAL_TOKEN_OPTION.match(k) else public_options(v) for k, v in options.items()}
    if isinstance(options, (list, tuple)):
        return type(options)(public_options(v) for v in options)
    if isinstance(options, str):
        return re.sub(r"(?<=://)[^/@\s]+@", "***@", options)
    return options


_TOKEN = re.compile(r"[A-Za-z0-9_\-]{20,}")


def mask_secrets(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` with credentials masked: the ``known`` values, the values of environment variables whose
    name says they hold one (``*KEY*``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``), credentials inside
    URLs, and any word shaped like a key (``looks_like_secret``)."""
    secrets = {s for s in known if s and len(s) >= 8}
    secrets |= {v for k, v in os.environ.items()
                if len(v) >= 8 and any(w in k.upper() for w in ("KEY", "TOKEN", "SECRET", "PASSWORD"))}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = re.sub(r"(?<=://)[^/@\s]+@", "***@", text)
    return _TOKEN.sub(lambda m: "***" if looks_like_secret(m.group(0)) else m.group(0), text)
