"""An engine that dies says why in one line (issue #20): vLLM's root cause read from the engine's log,
and the log's path; no traceback on the terminal, none of the engine's own chatter either.

The model is real and built here: a one-layer Llama with head_dim 16, which vLLM's CPU attention does not
support ("Unsupported CPU attention configuration: head_dim=16"); its engine loads, then dies on the
first forward pass, inside the worker process: the root cause exists only in that process's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def build_head_dim_16_model(folder: Path, bundled_model: Path) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(bundled_model)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_dying_engine_is_one_line_with_its_root_cause_and_log(tmp_path: Path, bundled_model: Path) -> None:
    model = build_head_dim_16_model(tmp_path / "head-dim-16", bundled_model)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_LOGGING")}
    env.update(HF2VLLM_HOME=str(home), COLUMNS="400")
    done = subprocess.run(
        [sys.executable, "-m", "hf2vllm.cli", "compare", "--model", str(model), "--limit", "1", "--max-new-tokens", "2"],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr  # no engine chatter: its progress bars and warnings went to the log
    assert lines[0].startswith("error: vLLM's engine failed: RuntimeError: Unsupported CPU attention configuration")
    assert "head_dim=16" in lines[0]
    log = Path(lines[0].rsplit("(full log: ", 1)[1].rstrip(")"))
    assert log.parent == home / "logs" and log.is_file()
    text = log.read_text()
    assert "Unsupported CPU attention configuration" in text and "Traceback" in text
    assert "Loading safetensors checkpoint shards" in text  # the worker's stderr, not the terminal's
