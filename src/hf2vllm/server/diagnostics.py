"""``check-server``: the smoke test of an OpenAI-compatible server that teams otherwise write by hand.

Usage::

    report = check_server(CheckOptions(base_url="http://127.0.0.1:8000/v1"))
    report.passed            # every required check passed
    [c.name for c in report.checks if not c.passed]

Connection failures are classified (``diagnose_error``/``diagnose_status``, pure functions) into one
of: refused, timeout, tls, dns, auth, wrong_path, model_not_served, protocol, http_error; each carries
a one-line fix. The checks then send a completion, a chat completion, logprobs with the requested
top-k, ``prompt_logprobs``, a repeated-prefix probe of prefix caching and a streamed request.
"""

from __future__ import annotations

import json
import math
import ssl
import time
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field

from hf2vllm.checks import public_url
from hf2vllm.server.client import ClientConfig, redact

FailureKind = Literal[
    "refused", "timeout", "tls", "dns", "auth", "wrong_path", "model_not_served", "protocol", "http_error", "bad_answer"
]

CHECK_NAMES = ("connection", "model", "max_model_len", "completion", "chat", "logprobs", "prompt_logprobs",
               "prefix_caching", "streaming")
DEFAULT_REQUIRED = ("connection", "model", "completion", "chat", "logprobs")


class Diagnosis(BaseModel):
    """Why a server could not be used, and the one-line fix."""

    kind: FailureKind
    message: str
    fix: str


class CheckResult(BaseModel):
    name: str
    required: bool
    passed: bool
    detail: str
    fix: str | None = None
    diagnosis: FailureKind | None = None
    value: Any = None


class CheckReport(BaseModel):
    """All checks against one server: ``hf2vllm check-server --json`` prints this."""

    base_url: str = Field(description="Without credentials (checks.public_url), as every URL shown.")
    model: str | None
    passed: bool
    checks: list[CheckResult]


class CheckOptions(BaseModel):
    base_url: str
    model: str | None = Field(None, description="Served model name to check; None = the only one served.")
    api_key_env: str | None = None
    timeout_s: float = 10.0
    top_k: int = Field(5, ge=1, le=20)
    required: list[str] = Field(default_factory=lambda: list(DEFAULT_REQUIRED))
    prefix_probe_words: int = Field(150, ge=8, description="Words of the repeated prompt (~3 tokens each).")


# ---------------------------------------------------------------------- classification (pure)
def diagnose_error(err: BaseException, url: str) -> Diagnosis:
    """Classify a transport-level failure of a request to ``url``."""
    text = f"{type(err).__name__}: {err}"
    chain = [err]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        if nxt is None or nxt in chain:
            break
        chain.append(nxt)
    causes = " ".join(f"{type(e).__name__}: {e}" for e in chain).lower()
    if any(isinstance(e, ssl.SSLError) for e in chain) or "ssl" in causes or "certificate" in causes:
        if "certificate" in causes:
            return Diagnosis(kind="tls", message=f"TLS certificate rejected at {url} ({text})",
                             fix="trust the server's CA (SSL_CERT_FILE=ca.pem) or fix the certificate's host name")
        return Diagnosis(kind="tls", message=f"TLS handshake failed at {url} ({text})",
                         fix="the server speaks plain HTTP here: use http:// instead of https:// (or enable TLS on it)")
    if isinstance(err, httpx.TimeoutException):
        phase = "connecting" if isinstance(err, httpx.ConnectTimeout) else "waiting for the answer"
        return Diagnosis(kind="timeout", message=f"timed out {phase} at {url}",
                         fix="the host accepts no traffic or is overloaded: check the address/firewall, or raise --timeout")
    if "name or service not known" in causes or "nodename nor servname" in causes or "getaddrinfo" in causes:
        return Diagnosis(kind="dns", message=f"host name of {url} does not resolve",
                         fix="check the host name in the URL (or use the IP address)")
    if "refused" in causes or "errno 111" in causes:
        return Diagnosis(kind="refused", message=f"connection refused at {url}",
                         fix="nothing listens there: start the server (hf2vllm serve) or fix the host/port")
    if isinstance(err, (httpx.RemoteProtocolError, httpx.ReadError)):
        return Diagnosis(kind="protocol", message=f"the server at {url} closed the connection or did not speak HTTP ({text})",
                         fix="if the server uses TLS, use https://; otherwise check that the port is the API port")
    return Diagnosis(kind="protocol", message=f"request to {url} failed ({text})",
                     fix="check the URL and that the server is up")


def diagnose_status(status: int, body: str, url: str, model: str | None = None) -> Diagnosis:
    """Classify a non-200 answer."""
    detail = _message(body)
    if status == 401:
        return Diagnosis(kind="auth", message=f"401 Unauthorized at {url}: the server wants an API key",
                         fix="pass the key: --api-key-env VAR with VAR holding the server's --api-key")
    if status == 403:
        return Diagnosis(kind="auth", message=f"403 Forbidden at {url}: the key was rejected",
                         fix="the key in --api-key-env is wrong or lacks access: use the server's key")
    if status == 404 and ("does not exist" in detail or "model" in detail.lower() and model is not None
                          and model in detail):
        return Diagnosis(kind="model_not_served", message=f"model {model!r} is not served at {url}: {detail}",
                         fix="use --model with a name from GET /v1/models (vllm serve --served-model-name sets it)")
    if status in (404, 405) and "/v1/" in url:
        # The base URL is right (it ends in /v1); this one endpoint is missing.
        return Diagnosis(kind="wrong_path", message=f"{status} at {url}: the server has no such endpoint",
                         fix="serve with vLLM's OpenAI-compatible server (vllm serve), which has it")
    if status in (404, 405):
        return Diagnosis(kind="wrong_path", message=f"{status} at {url}: no OpenAI API on that path",
                         fix="the base URL must end in /v1, e.g. http://HOST:PORT/v1")
    return Diagnosis(kind="http_error", message=f"HTTP {status} at {url}: {detail}",
                     fix="read the server log; the message above is the server's own")


def _message(body: str) -> str:
    try:
        data = json.loads(body)
        err = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)
        return str(err)
    except (json.JSONDecodeError, AttributeError):
        return " ".join(body.split())[:200]


# ---------------------------------------------------------------------- the checks
class ServerCheckFailed(Exception):
    def __init__(self, diagnosis: Diagnosis) -> None:
        super().__init__(diagnosis.message)
        self.diagnosis = diagnosis


class _Probe:
    """Sync HTTP to one server; every failure becomes a ``ServerCheckFailed`` with a diagnosis."""

    def __init__(self, options: CheckOptions) -> None:
        self.config = ClientConfig(base_url=options.base_url, api_key_env=options.api_key_env)
        self.key = self.config.resolved_key()
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        self.http = httpx.Client(headers=headers, timeout=httpx.Timeout(options.timeout_s), follow_redirects=False)

    def url(self, path: str, root: bool = False) -> str:
        """The URL to request (credentials included: httpx sends them as Basic auth)."""
        base = self.config.root_url if root else self.config.base_url
        return base.rstrip("/") + "/" + path.lstrip("/")

    def shown(self, path: str, root: bool = False) -> str:
        """The same URL as it may be shown: without credentials."""
        return public_url(self.url(path, root))

    def request(self, method: str, path: str, *, root: bool = False, model: str | None = None, **kw: Any) -> httpx.Response:
        url = self.url(path, root)
        try:
            resp = self.http.request(method, url, **kw)
        except httpx.HTTPError as err:
            raise ServerCheckFailed(self._redacted(diagnose_error(err, public_url(url)))) from None
        if resp.status_code != 200:
            raise ServerCheckFailed(self._redacted(diagnose_status(resp.status_code, resp.text, public_url(url), model)))
        return resp

    def post(self, path: str, body: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        extra = {"timeout": timeout_s} if timeout_s else {}
        resp = self.request("POST", path, json=body, model=body.get("model"), **extra)
        try:
            return resp.json()
        except json.JSONDecodeError:
            raise ServerCheckFailed(Diagnosis(kind="bad_answer", message=f"{self.shown(path)} answered non-JSON",
                                              fix="the base URL points at something that is not an OpenAI API"))

    def _redacted(self, d: Diagnosis) -> Diagnosis:
        secrets = [self.key, *self.config.secrets()]
        return Diagnosis(kind=d.kind, message=redact(d.message, secrets), fix=redact(d.fix, secrets))

    def close(self) -> None:
        self.http.close()


def list_models(config: ClientConfig, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """``GET /v1/models``; a failure raises ``BackendUnavailableError`` with the diagnosis and fix."""
    from hf2vllm.errors import BackendUnavailableError

    probe = _Probe(CheckOptions(base_url=config.base_url, api_key_env=config.api_key_env, timeout_s=timeout_s))
    if config.api_key is not None:
        probe.key = config.api_key.get_secret_value()
        probe.http.headers["Authorization"] = f"Bearer {probe.key}"
    try:
        return _models(probe)
    except ServerCheckFailed as failed:
        raise BackendUnavailableError(f"{failed.diagnosis.message}; fix: {failed.diagnosis.fix}") from None
    finally:
        probe.close()


def _models(probe: _Probe) -> list[dict[str, Any]]:
    resp = probe.request("GET", "models")
    try:
        data = resp.json()["data"]
        assert isinstance(data, list)
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError):
        raise ServerCheckFailed(Diagnosis(
            kind="wrong_path", message=f"{probe.shown('models')} answered, but not with an OpenAI model list",
            fix="the base URL must be the API root ending in /v1, e.g. http://HOST:PORT/v1")) from None
    return data


def check_server(options: CheckOptions) -> CheckReport:
    """Run every check (stopping early only when the server cannot be reached or the model is missing)."""
    probe = _Probe(options)
    results: list[CheckResult] = []
    required = set(options.required)

    def add(name: str, passed: bool, detail: str, *, fix: str | None = None, value: Any = None,
            diagnosis: FailureKind | None = None) -> None:
        results.append(CheckResult(name=name, required=name in required, passed=passed, detail=detail, fix=fix,
                                   value=value, diagnosis=diagnosis))

    def failed(name: str, err: ServerCheckFailed) -> None:
        d = err.diagnosis
        add(name, False, d.message, fix=d.fix, diagnosis=d.kind)

    model = options.model
    try:
        moved = ""
        try:
            models = _models(probe)
        except ServerCheckFailed as err:
            api_base = _api_base(probe, err)
            if api_base is None:
                failed("connection", _with_base_url_hint(probe, err))
                return _report(options, model, results)
            # The server root (or a wrong path) was given: check the API where it is, and say so.
            moved = (f" (no OpenAI API at {public_url(options.base_url)}, so {public_url(api_base)} was tried "
                     "and is used: pass that URL next time)")
            options = options.model_copy(update={"base_url": api_base})
            probe.config = probe.config.model_copy(update={"base_url": api_base})
            models = _models(probe)
        add("connection", True, f"GET {probe.shown('models')} answered with {len(models)} model(s)" + moved)
        names = [str(m.get("id")) for m in models]
        if model is None:
            if len(names) != 1:
                add("model", False, f"the server serves {names or 'no models'}; choose one",
                    fix="pass --model NAME", diagnosis="model_not_served")
                return _report(options, model, results)
            model = names[0]
        if model not in names:
            add("model", False, f"model {model!r} is not served (served: {', '.join(names) or 'none'})",
                fix=f"use --model {names[0]}" if names else "start the server with the model",
                diagnosis="model_not_served")
            return _report(options, model, results)
        add("model", True, f"{model!r} is served", value=model)
        entry = models[names.index(model)]
        max_len = entry.get("max_model_len")
        if max_len:
            # The repeated-prefix prompt must fit the served context (a 400 would hide the answer).
            options = options.model_copy(update={"prefix_probe_words": max(8, min(150, int(max_len) // 5))})
        add("max_model_len", max_len is not None,
            f"serves up to {max_len} tokens per request (prompt + output)" if max_len else
            "the server does not report max_model_len", value=max_len)
        for name, check in (("completion", _check_completion), ("chat", _check_chat),
                            ("logprobs", _check_logprobs), ("prompt_logprobs", _check_prompt_logprobs),
                            ("prefix_caching", _check_prefix_caching), ("streaming", _check_streaming)):
            try:
                passed, detail, value = check(probe, model, options)
                add(name, passed, detail, value=value,
                    fix=None if passed else _FIXES.get(name))
            except ServerCheckFailed as err:
                failed(name, err)
    finally:
        probe.close()
    return _report(options, model, results)


_FIXES = {
    "logprobs": "start vLLM with --max-logprobs >= the requested top-k (default 20)",
    "prompt_logprobs": "vLLM serves prompt_logprobs on /v1/completions; upgrade vLLM or use the offline backend to score",
    "prefix_caching": "start vLLM with --enable-prefix-caching",
    "chat": "the model has no chat template: pass vllm serve --chat-template FILE, or use completions",
}


def _report(options: CheckOptions, model: str | None, results: list[CheckResult]) -> CheckReport:
    ok = all(r.passed for r in results if r.required) and {r.name for r in results} >= {
        n for n in options.required}
    return CheckReport(base_url=public_url(options.base_url), model=model, passed=ok, checks=results)


def _api_base(probe: _Probe, err: ServerCheckFailed) -> str | None:
    """Where the OpenAI API is when the given URL has none (``<url>/v1``, ``<root>/v1``), else None."""
    if err.diagnosis.kind != "wrong_path":
        return None
    given = probe.config.base_url.rstrip("/")
    for candidate in dict.fromkeys([given + "/v1", probe.url("v1", root=True).rstrip("/")]):
        if candidate == given:
            continue
        try:
            resp = probe.http.get(candidate + "/models")
            if resp.status_code == 200 and isinstance(resp.json().get("data"), list):
                return candidate
        except (httpx.HTTPError, json.JSONDecodeError, AttributeError):
            continue
    return None


def _with_base_url_hint(probe: _Probe, err: ServerCheckFailed) -> ServerCheckFailed:
    """A wrong path where ``<root>/v1/models`` works: name the right base URL in the fix."""
    if err.diagnosis.kind != "wrong_path":
        return err
    candidates = [probe.config.base_url.rstrip("/") + "/v1", probe.url("v1", root=True)]
    for candidate in dict.fromkeys(candidates):
        try:
            resp = probe.http.get(candidate + "/models")
            if resp.status_code == 200 and "data" in resp.json():
                return ServerCheckFailed(Diagnosis(kind="wrong_path", message=err.diagnosis.message,
                                                   fix=f"use the base URL {public_url(candidate)}"))
        except (httpx.HTTPError, json.JSONDecodeError):
            continue
    return err


def _check_completion(probe: _Probe, model: str, o: CheckOptions) -> tuple[bool, str, Any]:
    data = probe.post("completions", {"model": model, "prompt": "The capital of France is", "max_tokens": 8,
                                      "temperature": 0})
    text = data["choices"][0].get("text")
    usage = data.get("usage") or {}
    ok = isinstance(text, str) and usage.get("completion_tokens", 0) >= 1
    return ok, f"{usage.get('completion_tokens')} tokens: {text!r}", text


def _check_chat(probe: _Probe, model: str, o: CheckOptions) -> tuple[bool, str, Any]:
    data = probe.post("chat/completions", {"model": model, "messages": [{"role": "user", "content": "Say hello."}],
                                           "max_tokens": 8, "temperature": 0})
    message = data["choices"][0].get("message") or {}
    content = message.get("content")
    return isinstance(content, str) and bool(content), f"assistant: {content!r}", content


def _check_logprobs(probe: _Probe, model: str, o: CheckOptions) -> tuple[bool, str, Any]:
    k = o.top_k
    data = probe.post("completions", {"model": model, "prompt": "One, two, three,", "max_tokens": 4,
                                      "temperature": 0, "logprobs": k})
    lp = data["choices"][0].get("logprobs")
    if not lp or not lp.get("top_logprobs"):
        return False, "no logprobs in the answer", None
    problems = logprob_problems(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], k)
    chat = probe.post("chat/completions", {"model": model, "messages": [{"role": "user", "content": "Count to 3."}],
                                           "max_tokens": 4, "temperature": 0, "logprobs": True, "top_logprobs": k})
    content = (chat["choices"][0].get("logprobs") or {}).get("content") or []
    if not content:
        problems.append("chat: no logprobs.content")
    for pos, entry in enumerate(content):
        if len(entry.get("top_logprobs") or []) != k:
            problems.append(f"chat position {pos}: {len(entry.get('top_logprobs') or [])} alternatives, asked {k}")
    if problems:
        return False, "; ".join(problems[:3]), problems
    return True, f"{len(lp['tokens'])} positions with top-{k} alternatives (completions and chat), consistent", k


def logprob_problems(tokens: list[str], chosen: list[float], tops: list[dict[str, float]], k: int) -> list[str]:
    """Inconsistencies of a completions ``logprobs`` block with a requested top-``k`` (pure).

    Per position the server returns the k best tokens, plus the chosen token when it ranked below k;
    logprobs are <= 0, and the chosen token's logprob equals its entry among the alternatives.
    """
    problems = []
    for pos, (tok, lp, top) in enumerate(zip(tokens, chosen, tops, strict=False)):
        top = top or {}
        if not k <= len(top) <= k + 1:
            problems.append(f"position {pos}: {len(top)} alternatives, asked {k}")
        if lp is None or math.isnan(lp) or lp > 1e-6 or any(v > 1e-6 for v in top.values()):
            problems.append(f"position {pos}: a logprob above 0")
        if tok in top and abs(top[tok] - lp) > 1e-4:
            problems.append(f"position {pos}: chosen token logprob {lp} != its alternative entry {top[tok]}")
        if len(top) == k + 1 and tok not in top:
            problems.append(f"position {pos}: k+1 alternatives without the chosen token")
    if len(tokens) != len(chosen) or len(tokens) != len(tops):
        problems.append("tokens, token_logprobs and top_logprobs differ in length")
    return problems


def _check_prompt_logprobs(probe: _Probe, model: str, o: CheckOptions) -> tuple[bool, str, Any]:
    data = probe.post("completions", {"model": model, "prompt": "Paris is the capital of", "max_tokens": 1,
                                      "temperature": 0, "prompt_logprobs": 1})
    plp = data["choices"][0].get("prompt_logprobs")
    prompt_tokens = (data.get("usage") or {}).get("prompt_tokens")
    if not plp:
        return False, "the server ignores prompt_logprobs (not in the answer)", None
    ok = plp[0] is None and (prompt_tokens is None or len(plp) == prompt_tokens)
    return ok, f"{len(plp)} prompt positions scored (first is null, as it has no context)", len(plp)


def _check_prefix_caching(probe: _Probe, model: str, o: CheckOptions) -> tuple[bool, str, Any]:
    """Send the same long prompt twice; the second must hit the cache (``/metrics`` counters), or
    report cached tokens in ``usage`` when the server exposes no metrics."""
    # Long enough to fill whole KV blocks (a partial block is never cached); unique per run so the
    # first request cannot hit an earlier run's cache.
    prompt = f"probe {time.time_ns()} " + " ".join(f"item{i}" for i in range(o.prefix_probe_words))
    before = _prefix_hits(probe)
    usage = None
    for _ in range(2):
        usage = probe.post("completions", {"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0},
                           timeout_s=3 * o.timeout_s).get("usage")
    after = _prefix_hits(probe)
    if before is not None and after is not None:
        hits = after - before
        return hits > 0, (f"on: the repeated prompt reused {hits:.0f} cached tokens (/metrics)" if hits > 0 else
                          "off: a repeated prompt reused no cached tokens (/metrics)"), hits > 0
    cached = ((usage or {}).get("prompt_tokens_details") or {}).get("cached_tokens")
    if cached is not None:
        return cached > 0, f"{'on' if cached else 'off'}: {cached} cached prompt tokens reported in usage", cached > 0
    return False, "unknown: no /metrics and no cached-token count in usage", None


def _prefix_hits(probe: _Probe) -> float | None:
    try:
        resp = probe.http.get(probe.url("metrics", root=True))
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    from prometheus_client.parser import text_string_to_metric_families

    total = None
    for family in text_string_to_metric_families(resp.text):
        if family.name in ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits"):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    total = (total or 0.0) + sample.value
    return total


def _check_streaming(probe: _Probe, model: str, o: CheckOptions) -> tuple[bool, str, Any]:
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0, "stream": True}
    url = probe.url("completions")
    start = time.perf_counter()
    ttft = None
    chunks = 0
    try:
        with probe.http.stream("POST", url, json=body) as resp:
            if resp.status_code != 200:
                raise ServerCheckFailed(probe._redacted(
                    diagnose_status(resp.status_code, resp.read().decode(), public_url(url), model)))
            for line in resp.iter_lines():
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    chunks += 1
                    if ttft is None:
                        ttft = time.perf_counter() - start
    except httpx.HTTPError as err:
        raise ServerCheckFailed(probe._redacted(diagnose_error(err, public_url(url)))) from None
    if not chunks:
        return False, "no SSE chunks", None
    return True, f"{chunks} chunks, first after {1000 * (ttft or 0):.0f} ms", round(ttft or 0, 4)
