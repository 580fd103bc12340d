"""Edge cases where a careless rule would cry wolf (or stay silent): each pins one decision of a rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf2vllm.doctor import DoctorSettings, scan


def _findings(tmp_path: Path, files: dict[str, str]) -> list[tuple[str, int]]:
    for name, content in files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    report = scan([tmp_path], DoctorSettings(), root=tmp_path)
    return [(f.rule_id, f.line) for f in report.findings]


CASES = {
    "jinja chat template definition is not manual formatting": (
        "from transformers import AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained('HuggingFaceTB/SmolLM2-135M-Instruct')\n"
        "tok.chat_template = \"{% for m in messages %}<|im_start|>{{ m['role'] }}\\n{% endfor %}\"\n",
        []),
    "special-token tables are not prompts": (
        "SPECIAL = ['<image>', '<|image_pad|>', '<|im_start|>']\n"
        "from transformers import AutoTokenizer\n"
        "tok = AutoTokenizer.from_pretrained('m')\n"
        "ids = [tok.convert_tokens_to_ids(t) for t in ('<|im_start|>', '<|image_pad|>')]\n",
        []),
    "a bare placeholder glued into a prompt is flagged": (
        "prompt = '<|image_pad|>' * 64 + question\n",
        [("HVD006", 1)]),
    "stop list naming the end-of-turn token by string is complete": (
        "from vllm import LLM, SamplingParams\n"
        "llm = LLM(model='Qwen/Qwen2.5-0.5B-Instruct')\n"
        "tok = llm.get_tokenizer()\n"
        "p = SamplingParams(temperature=0, stop_token_ids=[151643, tok.convert_tokens_to_ids('<|im_end|>')])\n"
        "q = SamplingParams(temperature=0, stop_token_ids=[151643], stop=['<|im_end|>'])\n",
        []),
    "stop list with a non-literal element is not judged": (
        "from vllm import LLM, SamplingParams\n"
        "llm = LLM(model='Qwen/Qwen2.5-0.5B-Instruct')\n"
        "p = SamplingParams(temperature=0, stop_token_ids=[eos_id])\n",
        []),
    "dtypes of different models are not compared": (
        "import torch\nfrom transformers import AutoModel\nfrom vllm import LLM\n"
        "probe_model = AutoModel.from_pretrained('intfloat/e5-small', dtype=torch.float32)\n"
        "llm = LLM(model='Qwen/Qwen2.5-0.5B-Instruct', dtype='bfloat16')\n",
        []),
    "vLLM generate is not Transformers generate": (
        "from vllm import LLM, SamplingParams\n"
        "llm = LLM(model='m')\n"
        "out = llm.generate(['hi'], SamplingParams(temperature=0, max_tokens=4))\n",
        []),
    "normalising both sides is an accepted comparison": (
        "def score(preds, golds):\n"
        "    return sum(normalise(p.text) == normalise(g['answer']) for p, g in zip(preds, golds))\n",
        []),
    "raw comparison of generated text with a gold field is flagged": (
        "def score(outputs, golds):\n"
        "    return sum(o.outputs[0].text == g['answer'] for o, g in zip(outputs, golds))\n",
        [("HVD016", 2)]),
    "rate limiting an external API is fine": (
        "from aiolimiter import AsyncLimiter\nfrom openai import AsyncOpenAI\n"
        "client = AsyncOpenAI(base_url='https://api.openai.com/v1')\nlimiter = AsyncLimiter(60)\n",
        []),
    "retry backoff sleeping in an except handler is not throttling": (
        "import time\nimport requests\nURL = 'http://127.0.0.1:8000/v1/completions'\n"
        "for p in prompts:\n    try:\n        requests.post(URL, json={'prompt': p})\n"
        "    except requests.ConnectionError:\n        time.sleep(1)\n",
        []),
    "pooling with activation off through a dict is fine": (
        "import torch\nfrom vllm import LLM\nhead = torch.nn.Linear(8, 2)\n"
        "llm = LLM(model='m', runner='pooling', pooler_config={'use_activation': False})\n",
        []),
    "trust_remote_code on vLLM only is a mismatch too": (
        "from transformers import AutoTokenizer\nfrom vllm import LLM\n"
        "tok = AutoTokenizer.from_pretrained('org/m')\nllm = LLM(model='org/m', trust_remote_code=True)\n",
        [("HVD014", 4)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rule_edge_case(name: str, tmp_path: Path) -> None:
    source, expected = CASES[name]
    assert _findings(tmp_path, {"case.py": source}) == expected


def test_unparsable_files_are_reported_and_the_rest_is_scanned(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def f(:\n", encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n", encoding="utf-8")
    (tmp_path / "serve.sh").write_text("vllm serve m --enforce-eager\n", encoding="utf-8")
    report = scan([tmp_path], DoctorSettings(), root=tmp_path)
    assert [f.rule_id for f in report.findings] == ["HVD101"]
    assert len(report.parse_errors) == 2
    assert any(e.startswith("broken.py:1: cannot parse Python") for e in report.parse_errors)
    assert any(e.startswith("broken.yaml") for e in report.parse_errors)


def test_enforce_eager_debug_markers(tmp_path: Path) -> None:
    marked = {
        "a.sh": "DEBUG=1 vllm serve m --enforce-eager\n",
        "b.sh": "# Debugging a CUDA graph crash\nvllm serve m --enforce-eager\n",
        "serve_debug.sh": "vllm serve m --enforce-eager\n",
    }
    assert _findings(tmp_path, marked) == []
