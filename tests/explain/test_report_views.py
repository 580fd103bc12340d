"""report.html in a real headless Chromium, the `hf2vllm report` command and its exit-1 gate, and
the committed schema doc."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf2vllm.report.html import render_html, write_html
from hf2vllm.report.json_file import write_report

REPO = Path(__file__).resolve().parents[2]
HF2VLLM = [sys.executable, "-m", "hf2vllm.cli"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "chromium is missing: run `make browser` (apt-get install chromium)"
    return path


def dump_dom(html_file: Path, profile: Path) -> str:
    cmd = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--dump-dom", html_file.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_html_report_has_no_network_resource_references(template_fault_report) -> None:
    html = render_html(template_fault_report)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"url\(\s*['\"]?https?:", html, re.IGNORECASE)
    assert "@import" not in html


def test_html_report_renders_in_headless_chromium(template_fault_report, tmp_path: Path) -> None:
    page = write_html(template_fault_report, tmp_path / "report.html")
    dom = dump_dom(page, tmp_path / "profile")
    # The inline script ran (no network needed): it marks the body and counts the visible requests.
    assert 'data-ready="1"' in dom
    total = len(template_fault_report.requests)
    assert f"{total} of {total} requests shown" in dom
    # Summary cards, the cause with its evidence, both charts, one section per request.
    assert 'id="card-exact"' in dom and 'data-verdict="mismatch"' in dom
    assert 'data-cause="chat_template_differs"' in dom and "chat-template special tokens" in dom
    assert 'id="chart-delta"' in dom and 'id="chart-positions"' in dom and "<polyline" in dom
    for row in template_fault_report.requests:
        assert f'id="req-{row.id}"' in dom
    # The first divergence is highlighted and tokens carry their logprobs for hover.
    assert dom.count('class="tok div"') >= 2 * total - dom.count("(stopped)")
    assert re.search(r'title="#0 id \d+ [^"]*logprob -?\d', dom)


def test_report_screenshot_renders(template_fault_report, tmp_path: Path) -> None:
    page = write_html(template_fault_report, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1600", f"--screenshot={shot}",
         page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_report_command_exits_1_below_the_exact_match_gate(template_fault_report, tmp_path: Path) -> None:
    write_report(template_fault_report, tmp_path)
    rate = template_fault_report.summary.exact_match_rate
    assert rate < 1.0
    gated = subprocess.run([*HF2VLLM, "report", str(tmp_path), "--min-exact-match", "1.0"],
                           capture_output=True, text=True, timeout=120)
    assert gated.returncode == 1
    assert gated.stderr.strip() == f"error: exact-match rate {rate:.3f} is below --min-exact-match 1.0"
    assert "chat_template_differs" in gated.stdout


def test_report_command_rerenders_html_and_passes_a_met_gate(template_fault_report, tmp_path: Path) -> None:
    write_report(template_fault_report, tmp_path / "run")
    target = tmp_path / "page.html"
    done = subprocess.run(
        [*HF2VLLM, "report", str(tmp_path / "run" / "report.json"), "--html", str(target), "--min-exact-match", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert target.read_text(encoding="utf-8") == render_html(template_fault_report)


def test_report_command_on_a_missing_report_is_bad_input(tmp_path: Path) -> None:
    done = subprocess.run([*HF2VLLM, "report", str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: report not found: {tmp_path / 'nope'}"


def test_committed_schema_doc_equals_the_generated_one() -> None:
    from hf2vllm.report.schema_doc import render_schema_doc

    committed = (REPO / "docs" / "report-schema.md").read_text(encoding="utf-8")
    assert committed == render_schema_doc(), "regenerate: python -m hf2vllm.report.schema_doc > docs/report-schema.md"


@pytest.mark.parametrize("flag", ["--hf-option", "--vllm-option"])
def test_malformed_side_option_is_a_one_line_error(flag: str) -> None:
    done = subprocess.run([*HF2VLLM, "compare", flag, "oops"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {flag} 'oops': expected KEY=VALUE (e.g. {flag} repetition_penalty=1.3)"
