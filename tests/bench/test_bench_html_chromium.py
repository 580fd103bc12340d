"""The HTML report renders in a real headless Chromium, offline, with its charts and tables."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hf2vllm.bench.outputs.html import write_html

from bench_samples import full_report

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is required for the HTML tests: run `make browser`")


def run_chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "chromium-profile"
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("bench-html")
    path = write_html(full_report(), tmp / "bench.html")
    done = run_chromium(["--dump-dom", path.as_uri()], tmp)
    assert done.returncode == 0, done.stderr[-2000:]
    return path, done.stdout


def test_page_has_no_external_resources(page: tuple[Path, str]) -> None:
    source = page[0].read_text()
    assert "<script" not in source
    assert "http://" not in source.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        "http://127.0.0.1:1/v1", "")
    assert "https://" not in source


def test_chromium_renders_every_chart_and_table(page: tuple[Path, str]) -> None:
    dom = page[1]
    for title in ("Output tokens/s per mode", "Throughput vs HF batch size", "Output throughput vs concurrency",
                  "TTFT percentiles vs concurrency", "E2E latency percentiles vs rate (rate)",
                  "Decode speed per output position"):
        assert f"<title>{title}" in dom, title
    assert dom.count("<svg") >= 8
    assert 'id="offline-table"' in dom and 'id="serve-table"' in dom and 'class="decay-table"' in dom
    assert "vLLM all at once" in dom and "Fairness" in dom


def test_chromium_paints_the_charts(page: tuple[Path, str], tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    done = run_chromium([f"--screenshot={shot}", "--window-size=1200,2400", page[0].as_uri()], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    colors = image.getcolors(maxcolors=1 << 20) or []
    # Chart series colours (the palette's blue and red) are painted, not just text on white.
    painted = {rgb for _, rgb in colors}
    assert (31, 119, 180) in painted and (214, 39, 40) in painted
