"""Session-wide fixtures: the bundled model, ONE HF backend, ONE vLLM engine and ONE `vllm serve`.

Every test that needs an engine uses these (never its own), so a test session starts each at most
once. Engines run float32 and eager on CPU (DESIGN §2: fast start, fastest dtype on 2 cores) with an
explicit KV cache size so they start regardless of what else the machine is doing.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# hf2vllm never downloads: any accidental hub access must fail loudly in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Under ``make test`` two pytest-xdist workers (lanes, see pytest_collection_modifyitems) run at once.
# vLLM's CPU build binds every engine's compute thread to core 0 by default (it reserves the last core
# for its scheduler), so the two lanes' engines would share one core while the other idles: give each
# worker's engines a core of their own.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if _WORKER.startswith("gw") and int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", str(int(_WORKER[2:]) % (os.cpu_count() or 1)))

TEST_KV_CACHE_GIB = 1.0
"""KV cache of each test engine/server: ~23k tokens of the bundled model in float32."""

BUNDLED_MAX_NEW_TOKENS = 32
"""New tokens per request of the session's main-job run (``make run`` uses compare's default, 64):
the whole bundled prompt set, long contexts included, at half the decode cost; CI time is budgeted."""

TESTS_ROOT = Path(__file__).parent

SHARED_ENGINE_FIXTURES = frozenset({"vllm_backend", "bundled_report", "vllm_server"})
"""Session fixtures that start the ONE vLLM engine or the ONE `vllm serve`; see ``pytest_collection_modifyitems``."""
_AREA_RELEASES: dict[str, list[Callable[[], None]]] = defaultdict(list)


def release_after_area(area: str, release: Callable[[], None]) -> None:
    """Run ``release`` once the tests of ``tests/<area>/`` are done (``release`` must be idempotent).

    Without __init__.py files pytest's "package" scope is the whole session, so an engine that only
    one area needs would otherwise stay loaded until the end; on a 24 GiB machine several such
    engines at once would not fit. pytest runs each directory's tests together, in order.
    """
    _AREA_RELEASES[area].append(release)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Two lanes for ``make test`` (pytest-xdist, ``-n 2 --dist loadgroup``): every module that uses
    the shared engine or server runs in lane "shared", in one worker, so each still starts once; the
    rest (CLI subprocesses, area-only engines, pure unit tests) runs in lane "own" beside it. Most of
    a session is single-threaded start-up (imports, engine/server spawns), so two lanes use both cores.

    Lanes are per module, not per test: a module's module-scoped engine must stay in one worker.
    """
    shared_modules = {item.path for item in items if SHARED_ENGINE_FIXTURES & set(item.fixturenames)}
    for item in items:
        item.add_marker(pytest.mark.xdist_group("shared" if item.path in shared_modules else "own"))


def _area_of(item: pytest.Item | None) -> str | None:
    if item is None:
        return None
    try:
        return item.path.relative_to(TESTS_ROOT).parts[0]
    except ValueError:
        return None


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    area = _area_of(item)
    if area is not None and _area_of(nextitem) != area:
        for release in _AREA_RELEASES.pop(area, []):
            release()


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    from hf2vllm.models import bundled_model_path

    return bundled_model_path()


@pytest.fixture(scope="session")
def tokenizer(bundled_model: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model)


@pytest.fixture(scope="session")
def hf_backend(bundled_model: Path):  # type: ignore[no-untyped-def]
    from hf2vllm.backends.hf import HFBackend

    backend = HFBackend(bundled_model, dtype="float32")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def vllm_backend(bundled_model: Path):  # type: ignore[no-untyped-def]
    from hf2vllm.backends.vllm_offline import VLLMBackend

    backend = VLLMBackend(bundled_model, dtype="float32", enforce_eager=True, kv_cache_gib=TEST_KV_CACHE_GIB)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def bundled_max_new_tokens() -> int:
    return BUNDLED_MAX_NEW_TOKENS


@pytest.fixture(scope="session")
def bundled_report(hf_backend, vllm_backend):  # type: ignore[no-untyped-def]
    """The main job, once per session: greedy parity on the full bundled prompt set
    (``BUNDLED_MAX_NEW_TOKENS`` new tokens)."""
    from hf2vllm.parity.run import CompareOptions, run_compare

    return run_compare(
        CompareOptions(max_new_tokens=BUNDLED_MAX_NEW_TOKENS),
        backends={"reference": hf_backend, "candidate": vllm_backend},
    )


@pytest.fixture(scope="session")
def vllm_server(bundled_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:  # type: ignore[type-arg]
    """A real `vllm serve` of the bundled model on a free loopback port; yields the running server
    (``.base_url`` = http://127.0.0.1:PORT/v1, ``.model_name``, ``.log_path``)."""
    from hf2vllm.server.launch import ServerConfig, VLLMServer, small_cpu_server_args

    log = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    config = ServerConfig(
        model=bundled_model,
        served_model_name="smollm2-135m",
        extra_args=small_cpu_server_args(TEST_KV_CACHE_GIB),
        log_path=log,
    )
    with VLLMServer(config) as server:
        yield server


@pytest.fixture(scope="session")
def area_release() -> Callable[[str, Callable[[], None]], None]:
    """``area_release("pooling", backend.close)``: free an area-only engine when that area is done."""
    return release_after_area
