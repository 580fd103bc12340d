"""Bad input to the parity-side commands (compare, report, translate, doctor, budget, models), issue #20.

Each row runs the real ``hf2vllm`` entry point (``badinput.assert_bad_input``): exit 2, one ``error:`` line
naming the option (or ``file:line``) and the fix, no traceback, no secret anywhere, and nothing loaded.
The input files live in one folder beside each case's empty working directory; ``{in}`` in an argument
is that folder. Every row fails before any model, tokenizer or engine loads, in well under 2 s.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from badinput import CANARY, BadInput, assert_bad_input

SERVER = "http://127.0.0.1:9/v1"  # nothing listens there: every row must fail before a request is sent
USER = {"role": "user", "content": "What is the capital of France?"}


def line(**request: object) -> str:
    return json.dumps(request)


PROMPT_FILES = {
    "role-typo.jsonl": line(messages=[USER, {"role": "assistnt", "content": "Paris."}]),
    "latin1.jsonl": "",  # written as bytes below
    "empty-prompt.jsonl": line(prompt=""),
    "empty-messages.jsonl": line(messages=[]),
    "content-number.jsonl": line(messages=[{"role": "user", "content": 42}]),
    "part-without-type.jsonl": line(messages=[{"role": "user", "content": [{"text": "hi"}]}]),
    "prompt-typo.jsonl": line(promt="Once upon a time"),
    "bad-json.jsonl": line(prompt="fine") + '\n{"messages": [oops]}',
    "empty.jsonl": "\n\n",
    "image-to-text-model.jsonl": line(messages=[{"role": "user", "content": [
        {"type": "image", "image": "red.png"}, {"type": "text", "text": "What colour?"}]}]),
    "image-not-an-image.jsonl": line(messages=[{"role": "user", "content": [
        {"type": "image", "image": "fake.png"}, {"type": "text", "text": "What colour?"}]}]),
    "image-missing.jsonl": line(messages=[{"role": "user", "content": [
        {"type": "image", "image": "nowhere.png"}, {"type": "text", "text": "What colour?"}]}]),
    "image-remote.jsonl": line(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]),
    "secret-in-bad-line.jsonl": '{"prompt": "my key is ' + CANARY + '"',
    "domain-tagged.jsonl": line(messages=[USER], domain="chat"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, bundled_model: Path) -> Path:
    """Every file the rows point at, outside the cases' working directories."""
    root = tmp_path_factory.mktemp("bad-inputs")
    for name, text in PROMPT_FILES.items():
        (root / name).write_text(text + "\n", encoding="utf-8")
    (root / "latin1.jsonl").write_bytes(b'{"prompt": "caf\xe9"}\n')
    (root / "latin1.json").write_bytes(b'{"max_new_tokens": "caf\xe9"}')
    (root / "file.txt").write_text("a file, not a directory\n")
    (root / "noext").write_text("a file without a suffix\n")
    (root / "a-dir").mkdir()
    (root / "binary.json").write_bytes(bytes(range(256)) * 4)
    (root / "truncated.json").write_text('{"schema_version": "1.2", "reference": "hf", "requests": [{"id": "a"')
    (root / "empty.json").write_text("")
    (root / "list.json").write_text("[1, 2, 3]")
    (root / "not-json.json").write_text("max_new_tokens = 32\n")
    (root / "future-report.json").write_text(json.dumps({"schema_version": "9.0", "reference": "hf"}))
    (root / "bench.json").write_text(json.dumps({"schema_version": 1, "kind": "offline", "machine": {}}))
    (root / "pooling.json").write_text(json.dumps({"schema_version": "1.1", "task": "embed", "min_cosine": 0.99}))
    (root / "partial-report.json").write_text(json.dumps({"schema_version": "1.2", "reference": "hf"}))
    (root / "pooling-run").mkdir()
    (root / "pooling-run" / "pooling-report.json").write_text("{}")
    (root / "no-sizes.json").write_text(json.dumps({"model_type": "llama"}))
    (root / "sizes-not-numbers.json").write_text(json.dumps({"hidden_size": "big", "num_hidden_layers": 2}))
    (root / "fake.png").write_text("not an image\n")
    (root / "fake.safetensors").write_text("not a safetensors file\n")
    (root / "code").mkdir()
    (root / "code" / "ok.py").write_text("x = 1\n")
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 10, 10)).save(root / "red.png")
    adapter = root / "lora-bad-config"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{not json")
    # Checkpoint directories, each broken one way (tokenizer files copied, no weights needed to fail).
    config = json.loads((bundled_model / "config.json").read_text())
    for name, body in {
        "model-bad-json": '{"model_type": "llama",',
        "model-list-config": "[]",
        "model-no-model-type": json.dumps({k: v for k, v in config.items() if k != "model_type"}),
        "model-no-tokenizer": json.dumps(config),
    }.items():
        folder = root / name
        folder.mkdir()
        (folder / "config.json").write_text(body)
        if name != "model-no-tokenizer":
            for tok in ("tokenizer.json", "tokenizer_config.json"):
                (folder / tok).write_bytes((bundled_model / tok).read_bytes())
    (root / "model-no-config").mkdir()
    return root


@pytest.fixture(scope="module")
def tiny_vl() -> Path:
    from hf2vllm.multimodal.tiny_vl import ensure_tiny_vl

    return ensure_tiny_vl("idefics3")


C = "compare"
EMBED = ["--task", "embed"]
ON_SERVER = ["--server", SERVER]

COMPARE = [
    # compare --ray-workers records the HF reference on Ray: nothing that the record cannot hold.
    BadInput("compare-ray-address-alone", [C, "--ray-address", "auto"], "--ray-address: give --ray-workers N too"),
    BadInput("compare-reference-dir-alone", [C, "--reference-dir", "{in}/a-dir"],
             "--reference-dir: give --ray-workers N too"),
    BadInput("compare-ray-with-against", [C, "--ray-workers", "2", "--against", "{in}/a-dir"], "--against"),
    BadInput("compare-ray-hf-only-setting", [C, "--ray-workers", "2", "--hf-option", "repetition_penalty=1.2"],
             "--hf-option repetition_penalty with --ray-workers"),
    BadInput("compare-ray-hf-only-dtype", [C, "--ray-workers", "2", "--hf-option", "dtype=bfloat16"],
             "--hf-option dtype with --ray-workers"),
    BadInput("compare-ray-hf-no-template", [C, "--ray-workers", "2", "--no-chat-template", "hf"],
             "--no-chat-template hf with --ray-workers"),
    BadInput("compare-ray-vllm-reference", [C, "--ray-workers", "2", "--reference", "vllm", "--candidate", "hf"],
             "--ray-workers puts the HF reference on Ray workers"),
    BadInput("compare-ray-no-logprobs", [C, "--ray-workers", "2", "--logprobs", "0"], "--logprobs 0 with --ray-workers"),
    BadInput("compare-ray-pooling", [C, "--ray-workers", "2", *EMBED], "pooling, LoRA and probe runs take no Ray workers"),
    BadInput("compare-ray-reference-dir-a-file", [C, "--ray-workers", "2", "--reference-dir", "{in}/file.txt"],
             "--reference-dir {in}/file.txt: is a file"),
    BadInput("compare-ray-zero-cpus", [C, "--ray-workers", "2", "--ray-worker-cpus", "0"], "--ray-worker-cpus"),
    # Checked too late before: each of these used to run HF (and vLLM) first.
    BadInput("compare-out-is-a-file", [C, "--out", "{in}/file.txt"],
             "--out {in}/file.txt: is a file; give a directory"),
    BadInput("compare-out-under-a-file", [C, "--out", "{in}/file.txt/run"], "is a file, so nothing can be created"),
    BadInput("compare-vllm-option-unknown", [C, "--vllm-option", "bogus_engine_arg=1"],
             "--vllm-option: unknown engine argument or setting 'bogus_engine_arg'"),
    BadInput("compare-vllm-option-typo", [C, "--vllm-option", "max_num_seq=4"], "did you mean 'max_num_seqs'?"),
    BadInput("compare-vllm-option-not-an-int", [C, "--vllm-option", "max_num_seqs=lots"],
             "--vllm-option max_num_seqs='lots': expected an integer"),
    BadInput("compare-vllm-option-not-a-bool", [C, "--vllm-option", "enforce_eager=maybe"],
             "--vllm-option enforce_eager='maybe': expected true or false"),
    BadInput("compare-vllm-option-model", [C, "--vllm-option", "model=other"], "the model is set by --model"),
    BadInput("compare-vllm-option-bad-generation-value", [C, "--vllm-option", "repetition_penalty=-1"],
             "--vllm-option repetition_penalty"),
    BadInput("compare-vllm-option-secret-key-typo", [C, "--vllm-option", f"hf_tokn={CANARY}"],
             "did you mean 'hf_token'?"),
    BadInput("compare-hf-option-typo", [C, "--hf-option", "attn_implementaton=eager"],
             "did you mean 'attn_implementation'?"),
    BadInput("compare-hf-option-engine-argument", [C, "--hf-option", "gpu_memory_utilization=0.5"],
             "--hf-option: unknown load option or setting 'gpu_memory_utilization'"),
    BadInput("compare-hf-option-sampling", [C, "--hf-option", "do_sample=true"], "token-by-token parity"),
    BadInput("compare-api-key-env-unset", [C, *ON_SERVER, "--api-key-env", "HF2VLLM_TEST_UNSET_KEY"],
             "HF2VLLM_TEST_UNSET_KEY: that environment variable is not set"),
    BadInput("compare-api-key-pasted", [C, *ON_SERVER, "--api-key-env", CANARY], "the NAME of an environment variable"),
    BadInput("compare-api-key-env-without-server", [C, "--api-key-env", "HF2VLLM_CANARY"],
             "--api-key-env is for a server side; add --server URL"),
    BadInput("compare-journal-is-a-directory", [C, *ON_SERVER, "--journal", "{in}/a-dir"],
             "--journal {in}/a-dir: is a directory; give a file path"),
    BadInput("compare-journal-without-server", [C, "--journal", "{in}/j.jsonl"], "--journal is for a server side"),
    BadInput("compare-url-credentials-and-bad-journal",
             [C, "--server", f"http://user:{CANARY}@127.0.0.1:9/v1", "--journal", "{in}/a-dir"],
             "--journal {in}/a-dir: is a directory"),
    BadInput("compare-request-timeout-zero", [C, *ON_SERVER, "--request-timeout", "0"],
             "--request-timeout: got 0; expected greater than 0"),
    BadInput("compare-requests-per-minute-negative", [C, *ON_SERVER, "--requests-per-minute", "-1"],
             "--requests-per-minute: got -1"),
    BadInput("compare-reference-unknown", [C, "--reference", "vlm"], "--reference: unknown value 'vlm'"),
    # Numbers that mean nothing.
    BadInput("compare-max-model-len-zero", [C, "--max-model-len", "0"], "--max-model-len: got 0; expected 1 or more"),
    BadInput("compare-max-model-len-negative", [C, "--max-model-len", "-5"], "--max-model-len: got -5"),
    BadInput("compare-max-model-len-beyond-the-model", [C, "--max-model-len", "1000000"],
             "--max-model-len 1000000: the model's context is 8192 tokens"),
    BadInput("compare-kv-cache-negative", [C, "--kv-cache-gib", "-2"],
             "--kv-cache-gib: got -2; expected greater than 0"),
    BadInput("compare-kv-cache-zero", [C, "--kv-cache-gib", "0"], "--kv-cache-gib: got 0"),
    BadInput("compare-kv-cache-nan", [C, "--kv-cache-gib", "nan"], "--kv-cache-gib: nan is not a finite number"),
    BadInput("compare-min-cosine-above-one", [C, *EMBED, "--min-cosine", "2"],
             "--min-cosine: got 2; expected between -1 and 1"),
    BadInput("compare-logprobs-beyond-vllm", [C, "--logprobs", "50"], "--logprobs 50: vLLM returns at most 20"),
    # Names.
    BadInput("compare-dtype-unknown", [C, "--dtype", "banana"],
             "--dtype: unknown dtype 'banana'; choose one of float32"),
    BadInput("compare-task-unknown", [C, "--task", "nonsense"],
             "--task: unknown value 'nonsense'; choose one of generate"),
    BadInput("compare-no-chat-template-unknown", [C, "--no-chat-template", "xyz"],
             "--no-chat-template: unknown value 'xyz'"),
    BadInput("compare-vllm-normalise-unknown", [C, *EMBED, "--vllm-normalise", "maybe"],
             "--vllm-normalise: unknown value 'maybe'"),
    BadInput("compare-quantization-unknown", [C, *EMBED, "--quantization", "fp9"], "did you mean 'fp8'?"),
    # Options of one task given to another.
    BadInput("compare-quantization-for-generate", [C, "--quantization", "fp8"],
             "--quantization applies to --task hidden-states"),
    BadInput("compare-min-cosine-for-generate", [C, "--min-cosine", "0.5"], "--min-cosine applies to --task"),
    BadInput("compare-hf-kwargs-for-embed", [C, *EMBED, "--hf-kwargs", "{}"],
             "--hf-kwargs does not apply to --task embed"),
    # Files of the wrong kind.
    BadInput("compare-probe-missing", [C, *EMBED, "--probe", "{in}/nope.safetensors"],
             "--probe {in}/nope.safetensors: no such"),
    BadInput("compare-probe-directory", [C, *EMBED, "--probe", "{in}/a-dir"], "--probe {in}/a-dir: is a directory"),
    BadInput("compare-probe-not-safetensors", [C, *EMBED, "--probe", "{in}/fake.safetensors"],
             "not a readable safetensors file"),
    BadInput("compare-lora-file", [C, "--lora", "{in}/file.txt"], "--lora {in}/file.txt: is a file"),
    BadInput("compare-lora-bad-config", [C, "--lora", "{in}/lora-bad-config"], "adapter_config.json: not valid JSON"),
    BadInput("compare-generation-config-missing", [C, "--generation-config", "{in}/gc.json"],
             "--generation-config {in}/gc.json: no such"),
    BadInput("compare-generation-config-empty-dir", [C, "--generation-config", "{in}/a-dir"],
             "a directory without generation_config.json"),
    BadInput("compare-generation-config-not-json", [C, "--generation-config", "{in}/not-json.json"],
             ":1: not valid JSON"),
    # JSON options.
    BadInput("compare-hf-kwargs-not-json", [C, "--hf-kwargs", "{max_new_tokens: 3}"], "--hf-kwargs: not valid JSON"),
    BadInput("compare-hf-kwargs-empty", [C, "--hf-kwargs", ""], "--hf-kwargs: empty"),
    BadInput("compare-hf-kwargs-missing-file", [C, "--hf-kwargs", "@{in}/nope.json"],
             "--hf-kwargs {in}/nope.json: no such"),
    BadInput("compare-hf-kwargs-not-utf8", [C, "--hf-kwargs", "@{in}/latin1.json"], "not UTF-8 text"),
    BadInput("compare-hf-kwargs-sampling", [C, "--hf-kwargs", '{"do_sample": true, "temperature": 0.7}'],
             "--hf-kwargs do_sample=true: compare checks token-by-token parity"),
    BadInput("compare-mm-kwargs-text-only-model", [C, "--mm-processor-kwargs", '{"size": {"longest_edge": 128}}'],
             "--mm-processor-kwargs: the model"),
    BadInput("compare-mm-kwargs-not-json", [C, "--mm-processor-kwargs", "{size: 3}"],
             "--mm-processor-kwargs: not valid JSON"),
    # Prompt files: file:line, what is wrong, what to write instead.
    BadInput("compare-prompts-missing", [C, "--prompts", "{in}/nope.jsonl"],
             "--prompts {in}/nope.jsonl: no such prompt file"),
    BadInput("compare-prompts-directory", [C, "--prompts", "{in}/a-dir"], "--prompts {in}/a-dir: is a directory"),
    BadInput("compare-prompts-empty", [C, "--prompts", "{in}/empty.jsonl"], "{in}/empty.jsonl: no requests in file"),
    BadInput("compare-prompts-not-utf8", [C, "--prompts", "{in}/latin1.jsonl"], "{in}/latin1.jsonl:1: not UTF-8 text"),
    BadInput("compare-prompts-bad-json", [C, "--prompts", "{in}/bad-json.jsonl"],
             "{in}/bad-json.jsonl:2: not valid JSON"),
    BadInput("compare-prompts-empty-prompt", [C, "--prompts", "{in}/empty-prompt.jsonl"], ':1: "prompt" is empty'),
    BadInput("compare-prompts-empty-messages", [C, "--prompts", "{in}/empty-messages.jsonl"],
             ':1: "messages" is empty'),
    BadInput("compare-prompts-unknown-role", [C, "--prompts", "{in}/role-typo.jsonl"],
             "role-typo.jsonl:1: messages[1].role 'assistnt' is not a chat role (known: system, developer, user, "
             "assistant, tool); did you mean 'assistant'?"),
    BadInput("compare-prompts-content-number", [C, "--prompts", "{in}/content-number.jsonl"],
             "messages[0].content must be a string or a non-empty list of parts, got a number"),
    BadInput("compare-prompts-part-without-type", [C, "--prompts", "{in}/part-without-type.jsonl"],
             'messages[0].content[0] must be an object with a "type"'),
    BadInput("compare-prompts-key-typo", [C, "--prompts", "{in}/prompt-typo.jsonl"],
             "unknown key 'promt'; did you mean \"prompt\"?"),
    BadInput("compare-prompts-secret-not-echoed", [C, "--prompts", "{in}/secret-in-bad-line.jsonl"],
             ":1: not valid JSON"),
    BadInput("compare-prompts-image-for-text-model", [C, "--prompts", "{in}/image-to-text-model.jsonl"],
             "messages[0].content[0] is an image, but the model"),
    # Groups and the gate (parity.groups): a typo must not pass as one "(none)" group or an ignored gate.
    BadInput("compare-gate-unknown", [C, "--gate", "worst"],
             "--gate: unknown value 'worst'; choose one of worst-group, overall"),
    BadInput("compare-gate-without-threshold", [C, "--gate", "overall"],
             "--gate overall: there is nothing to gate without --min-exact-match"),
    BadInput("compare-group-by-absent-key", [C, "--prompts", "{in}/domain-tagged.jsonl", "--group-by", "domian"],
             "--group-by domian: no request carries the metadata key 'domian' (the keys they carry: domain)"),
    BadInput("compare-group-by-untagged-prompts", [C, "--group-by", "domain"],
             "no request carries the metadata key 'domain' (they carry no metadata keys)"),
    # Model directories.
    BadInput("compare-model-config-not-json", [C, "--model", "{in}/model-bad-json"], "config.json is not valid JSON"),
    BadInput("compare-model-config-no-model-type", [C, "--model", "{in}/model-no-model-type"],
             'config.json has no "model_type"'),
    BadInput("compare-model-without-tokenizer", [C, "--model", "{in}/model-no-tokenizer"], "no tokenizer files"),
]

VL = [
    BadInput("compare-vl-image-not-an-image", [C, "--model", "{vl}", "--prompts", "{in}/image-not-an-image.jsonl"],
             "messages[0].content[0]: cannot read image"),
    BadInput("compare-vl-image-missing", [C, "--model", "{vl}", "--prompts", "{in}/image-missing.jsonl"],
             "image file not found"),
    BadInput("compare-vl-image-remote", [C, "--model", "{vl}", "--prompts", "{in}/image-remote.jsonl"], "is remote"),
    BadInput("budget-image-not-an-image", ["budget", "--prompts", "{in}/image-not-an-image.jsonl"],
             "cannot read image"),
]

REPORT = [
    BadInput("report-dir-with-pooling-report", ["report", "{in}/pooling-run"], "holds a pooling report"),
    BadInput("report-binary", ["report", "{in}/binary.json"], "a binary file, not a hf2vllm report.json"),
    BadInput("report-truncated", ["report", "{in}/truncated.json"], "the file ends early (truncated?)"),
    BadInput("report-empty", ["report", "{in}/empty.json"], "empty file"),
    BadInput("report-json-list", ["report", "{in}/list.json"], "a JSON list, not a hf2vllm report"),
    BadInput("report-future-schema", ["report", "{in}/future-report.json"],
             "schema 9.0 is newer than this hf2vllm reads (up to 1."),
    BadInput("report-bench-json", ["report", "{in}/bench.json"], "a benchmark report (bench.json)"),
    BadInput("report-pooling-json", ["report", "{in}/pooling.json"], "a pooling report"),
    BadInput("report-missing-fields", ["report", "{in}/partial-report.json"], "not a hf2vllm compare report: field"),
    BadInput("report-gate-unknown", ["report", "{in}/partial-report.json", "--gate", "strict"],
             "--gate: unknown value 'strict'; choose one of worst-group, overall"),
    BadInput("report-html-under-a-file", ["report", "{in}/partial-report.json", "--html", "{in}/file.txt/r.html"],
             "--html {in}/file.txt/r.html: {in}/file.txt is a file"),
    BadInput("report-html-file-without-suffix", ["report", "{in}/partial-report.json", "--html", "{in}/noext"],
             "--html {in}/noext: an existing file without a suffix"),
]

DOCTOR = [
    BadInput("doctor-output-directory", ["doctor", "{in}/code", "--output", "{in}/a-dir"],
             "--output {in}/a-dir: is a directory"),
    BadInput("doctor-output-under-a-file", ["doctor", "{in}/code", "-o", "{in}/file.txt/out.json"],
             "is a file, so nothing"),
    BadInput("doctor-config-directory", ["doctor", "{in}/code", "--config", "{in}/a-dir"],
             "--config {in}/a-dir: is a directory"),
    BadInput("doctor-config-not-utf8", ["doctor", "{in}/code", "--config", "{in}/latin1.jsonl"],
             "--config {in}/latin1.jsonl: not UTF-8"),
    BadInput("doctor-model-config-missing", ["doctor", "{in}/code", "--model-config", "{in}/nope.json"],
             "--model-config {in}/nope.json: no such"),
    BadInput("doctor-model-config-not-json", ["doctor", "{in}/code", "--model-config", "{in}/not-json.json"],
             "not valid JSON"),
    BadInput("doctor-model-config-no-sizes", ["doctor", "{in}/code", "--model-config", "{in}/no-sizes.json"],
             "no 'hidden_size', so the model cannot be sized"),
    BadInput("doctor-model-config-sizes-not-numbers",
             ["doctor", "{in}/code", "--model-config", "{in}/sizes-not-numbers.json"], "are not numbers"),
    BadInput("doctor-workload-zero", ["doctor", "{in}/code", "--workload-max-tokens", "0"],
             "--workload-max-tokens: got 0"),
    BadInput("doctor-device-memory-negative", ["doctor", "{in}/code", "--device-memory-gib", "-80"],
             "--device-memory-gib: got -80"),
    BadInput("doctor-select-unknown", ["doctor", "{in}/code", "--select", "HVD9"],
             "unknown rule id or prefix 'HVD9' in --select"),
]

TRANSLATE = [
    BadInput("translate-model-and-generation-config",
             ["translate", "--hf", "{}", "--model", "x", "--generation-config", "{in}/list.json"],
             "give --model or --generation-config, not both"),
    BadInput("translate-vllm-with-prompt-length", ["translate", "--vllm", "{}", "--prompt-length", "5"],
             "--prompt-length resolves --hf"),
    BadInput("translate-hf-not-json", ["translate", "--hf", "{not json"], "--hf: not valid JSON"),
    BadInput("translate-hf-file-missing", ["translate", "--hf", "@{in}/nope.json"],
             "--hf {in}/nope.json: no such JSON file"),
    BadInput("translate-hf-file-not-utf8", ["translate", "--hf", "@{in}/latin1.json"], "not UTF-8 text"),
    BadInput("translate-vllm-unknown-key", ["translate", "--vllm", '{"max_token": 8}'],
             "--vllm: unknown SamplingParams parameter 'max_token'"),
    BadInput("translate-vllm-temperature-word", ["translate", "--vllm", '{"temperature": "hot", "ignore_eos": true}'],
             "temperature='hot'"),
    BadInput("translate-vllm-top-p-zero", ["translate", "--vllm", '{"top_p": 0}'],
             "top_p=0: vLLM expects a number in (0, 1]"),
    BadInput("translate-vllm-bad-words-without-model", ["translate", "--vllm", '{"bad_words": ["x"]}'],
             "pass --model DIR"),
    BadInput("translate-vllm-stop-ids-without-model", ["translate", "--vllm", '{"stop_token_ids": [5]}'],
             "stop_token_ids with ignore_eos=false"),
    BadInput("translate-model-config-broken", ["translate", "--hf", "{}", "--model", "{in}/model-no-model-type"],
             'has no "model_type"'),
    BadInput("translate-generation-config-not-json",
             ["translate", "--hf", "{}", "--generation-config", "{in}/not-json.json"],
             "--generation-config {in}/not-json.json:1: not valid JSON"),
]

BUDGET_AND_MODELS = [
    BadInput("budget-max-model-len-zero", ["budget", "--max-model-len", "0"], "--max-model-len: got 0"),
    BadInput("budget-prompts-directory", ["budget", "--prompts", "{in}/a-dir"], "--prompts {in}/a-dir: is a directory"),
    BadInput("budget-mm-kwargs-list", ["budget", "--mm-processor-kwargs", "[1]"],
             "--mm-processor-kwargs: expected a JSON object"),
    BadInput("budget-text-only-model", ["budget", "--model", "smollm2-135m"], "`budget` is for vision-language models"),
    BadInput("models-gptq-bits", ["models", "build-rtn-gptq", "--bits", "3"],
             "--bits: unknown value '3'; choose one of 4, 8"),
    BadInput("models-gptq-group-size", ["models", "build-rtn-gptq", "--group-size", "100"],
             "--group-size: unknown value '100'"),
    BadInput("models-gptq-out-is-a-file", ["models", "build-rtn-gptq", "--out", "{in}/file.txt"],
             "--out {in}/file.txt: is a file"),
    BadInput("models-w8a8-broken-source", ["models", "build-rtn-w8a8", "{in}/model-bad-json"],
             "config.json is not valid JSON"),
    BadInput("models-w8a8-source-without-model-type", ["models", "build-rtn-w8a8", "{in}/model-no-model-type"],
             'has no "model_type"'),
    BadInput("models-tiny-vl-family-typo", ["models", "build-tiny-vl", "--family", "qwen2vl"],
             "did you mean 'qwen2-vl'?"),
]

CASES = COMPARE + REPORT + DOCTOR + TRANSLATE + BUDGET_AND_MODELS


def resolved(case: BadInput, inputs: Path, vl: Path | None = None) -> BadInput:
    def fill(text: str) -> str:
        return text.replace("{in}", str(inputs)).replace("{vl}", str(vl))

    return dataclasses.replace(case, argv=[fill(a) for a in case.argv], expect=fill(case.expect))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_one_line_before_any_model(case: BadInput, inputs: Path, tmp_path: Path) -> None:
    assert_bad_input(resolved(case, inputs), tmp_path)


@pytest.mark.parametrize("case", VL, ids=lambda c: c.id)
def test_bad_image_input_is_one_line_before_any_model(case: BadInput, inputs: Path, tiny_vl: Path,
                                                      tmp_path: Path) -> None:
    assert_bad_input(resolved(case, inputs, tiny_vl), tmp_path)


def test_the_table_covers_at_least_80_inputs() -> None:
    ids = [c.id for c in CASES + VL]
    assert len(ids) == len(set(ids)) and len(ids) >= 80


# ---------------------------------------------------------------- the checks refuse nothing valid


def compare_defaults() -> dict[str, object]:
    import inspect

    from hf2vllm.commands.compare import compare

    return {name: p.default.default for name, p in inspect.signature(compare).parameters.items()}


@pytest.mark.parametrize("options", [
    {},
    {"task": "embed", "vllm_normalise": "off", "min_cosine": 0.99, "quantization": "fp8"},
    {"server": SERVER, "reference": "vllm", "journal": "journal.jsonl", "stream": True, "request_timeout": 30.0},
    {"vllm_option": ["max_num_seqs=4", "enable-prefix-caching=true", "repetition_penalty=1.3", "max_logprobs=30"],
     "logprobs": 25},
    {"hf_option": ["attn_implementation=eager", "add_bos_token=true", "skip_special_tokens=false", "dtype=bf16"]},
    {"no_chat_template": "hf", "vllm_tokenize": True, "max_model_len": 2048, "kv_cache_gib": 1.5},
    {"hf_kwargs": '{"max_new_tokens": 8, "repetition_penalty": 1.2}', "generation_config": "{model}"},
], ids=["defaults", "embed", "server", "vllm-options", "hf-options", "prompt-options", "hf-kwargs"])
def test_valid_compare_options_pass_the_checks(options: dict[str, object], bundled_model: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from hf2vllm.commands.compare_checks import check_compare_options

    monkeypatch.chdir(tmp_path)
    filled = {k: bundled_model if v == "{model}" else v for k, v in options.items()}
    check_compare_options({**compare_defaults(), **filled})


def test_image_setting_typos_are_refused_against_the_installed_processor(tiny_vl: Path) -> None:
    from hf2vllm.commands.compare_checks import check_compare_options
    from hf2vllm.errors import InputError

    good = {**compare_defaults(), "model": str(tiny_vl), "mm_processor_kwargs": '{"size": {"longest_edge": 128}}'}
    check_compare_options(good)
    with pytest.raises(InputError, match=r"--vllm-mm-processor-kwargs: unknown image-processor setting "
                                         r"'do_image_spliting'; did you mean 'do_image_splitting'\?"):
        check_compare_options({**good, "vllm_mm_processor_kwargs": '{"do_image_spliting": false}'})


def test_a_sampling_generation_config_is_refused_for_token_parity(bundled_model: Path) -> None:
    from hf2vllm.errors import InputError
    from hf2vllm.translation import spec_for_compare

    with pytest.raises(InputError, match='do_sample=true, so generate\\(\\) would sample.*"do_sample": false'):
        spec_for_compare({"max_new_tokens": 4}, {"do_sample": True, "temperature": 0.6, "eos_token_id": 2},
                         bundled_model)
    assert not spec_for_compare({"max_new_tokens": 4, "do_sample": False}, {"do_sample": True}, bundled_model).do_sample
