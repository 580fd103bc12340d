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

# Under ``make test`` two pytest-xdist workers (lanes, see ``lane_of``) run at once.
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

SHARED_ENGINE_FIXTURES = frozenset({"vllm_backend", "bundled_report", "bundled_report_hf_generate", "vllm_server"})
"""Session fixtures that start the ONE vLLM engine or the ONE `vllm serve`."""

SHARED_LANE_MODULES = frozenset({
    "bench/test_bench_offline_engines.py",
    "bench/test_bench_serve_server.py",
    "deploy/test_monitor.py",
    "explain/test_group_parity.py",
    "explain/test_planted_faults.py",
    "explain/test_report_views.py",
    "foundation/test_api_doc.py",
    "foundation/test_openai_batch_prompts.py",
    "foundation/test_parity_bundled.py",
    "reference/test_against_record.py",
    "reference/test_parity_plugin.py",
    "scale/test_ray_compare.py",
    "server/test_server_check.py",
    "server/test_server_compare_cli.py",
    "server/test_server_faults.py",
    "server/test_server_parity.py",
    "server/test_server_resume.py",
    "translation/test_greedy_parity.py",
    "translation/test_sampling_distribution.py",
})
"""The test modules that use ``SHARED_ENGINE_FIXTURES`` (checked at collection, see ``lane_of``)."""

_AREA_RELEASES: dict[str, list[Callable[[], None]]] = defaultdict(list)


def release_after_area(area: str, release: Callable[[], None]) -> None:
    """Run ``release`` once the tests of ``tests/<area>/`` are done (``release`` must be idempotent).

    Without __init__.py files pytest's "package" scope is the whole session, so an engine that only
    one area needs would otherwise stay loaded until the end; on a 24 GiB machine several such
    engines at once would not fit. pytest runs each directory's tests together, in order.
    """
    _AREA_RELEASES[area].append(release)


def lane_of(nodeid: str) -> str:
    """The lane of a test under ``make test`` (pytest-xdist, ``-n 2``): every module that uses the shared
    engine or server runs in lane "shared", in one worker, so each still starts once per session; the
    rest (CLI subprocesses, area-only engines, pure unit tests) runs in lane "own" in the other worker.
    Most of a session is single-threaded start-up (imports, engine and server spawns), so two lanes
    keep both cores busy. Lanes are whole modules: a module-scoped engine stays in one worker."""
    return "shared" if _module_of(nodeid) in SHARED_LANE_MODULES else "own"


def pytest_xdist_make_scheduler(config: pytest.Config, log):  # type: ignore[no-untyped-def]
    # xdist's own "loadgroup" renames node ids, which pytest 9 no longer allows: group by lane here.
    from xdist.scheduler import LoadScopeScheduling

    class LaneScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return lane_of(nodeid)

    return LaneScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A module that uses the shared engine or server outside lane "shared" would start a second one
    in the other worker (and may not fit in memory): refuse to run with a stale lane list."""
    uses_shared = {_module_of(item.nodeid) for item in items if SHARED_ENGINE_FIXTURES & set(item.fixturenames)}
    collected = {_module_of(item.nodeid) for item in items}
    missing = uses_shared - SHARED_LANE_MODULES
    stale = (SHARED_LANE_MODULES & collected) - uses_shared
    if missing or stale:
        raise pytest.UsageError(
            "tests/conftest.py SHARED_LANE_MODULES is out of date: "
            + (f"add {sorted(missing)} (they use {sorted(SHARED_ENGINE_FIXTURES)})" if missing else "")
            + (f"; remove {sorted(stale)} (they no longer use them)" if stale else "")
        )


def _module_of(nodeid: str) -> str:
    """``tests/area/test_x.py::test_y[...]`` -> ``area/test_x.py``."""
    return nodeid.split("::", 1)[0].removeprefix("tests/")


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
    (``BUNDLED_MAX_NEW_TOKENS`` new tokens), verdict by teacher forcing (compare's default)."""
    from hf2vllm.parity.run import CompareOptions, run_compare

    return run_compare(
        CompareOptions(max_new_tokens=BUNDLED_MAX_NEW_TOKENS),
        backends={"reference": hf_backend, "candidate": vllm_backend},
    )


@pytest.fixture(scope="session")
def bundled_report_hf_generate(hf_backend, vllm_backend):  # type: ignore[no-untyped-def]
    """The same main job by the older path: HF generate()s every request (``--hf-generate``), for the
    check that the teacher-forced verdict equals it request by request."""
    from hf2vllm.parity.run import CompareOptions, run_compare

    return run_compare(
        CompareOptions(max_new_tokens=BUNDLED_MAX_NEW_TOKENS, hf_generate=True),
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
