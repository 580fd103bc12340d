"""Patterns measured in real public code (issue 22): data flow through dicts and files, API drift judged by
the installed vLLM and the project's pin, launches in docker/compose, unreadable files never passing."""

from __future__ import annotations

from pathlib import Path

from doctor_support import run_doctor

from hf2vllm.doctor import DoctorSettings, scan


def _found(root: Path, files: dict[str, str | bytes]) -> list[tuple[str, int, str]]:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    report = scan([root], DoctorSettings(), root=root)
    assert report.parse_errors == []
    return [(f.path, f.line, f.rule_id) for f in report.findings]


def test_hf_settings_built_in_one_file_and_splatted_in_another_are_reported_at_the_splat(tmp_path: Path) -> None:
    found = _found(tmp_path, {
        "settings.py": "GEN = {'max_new_tokens': 64, 'top_p': 0.9}\n",
        "run.py": "from vllm import SamplingParams\nfrom settings import GEN\nsp = SamplingParams(**GEN)\n",
    })
    assert found == [("run.py", 3, "HVD001")]


def test_keywords_passed_to_a_wrapper_reach_samplingparams_through_its_kwargs(tmp_path: Path) -> None:
    found = _found(tmp_path, {"run.py": (
        "from vllm import SamplingParams\n"
        "def make(**kw):\n"
        "    return SamplingParams(**kw)\n"
        "a = make(temperature=0.0, max_tokens=8)\n"
        "b = make(num_return_sequences=2)\n")})
    assert found == [("run.py", 5, "HVD001")]


def test_dict_items_set_later_count_and_a_corrected_dict_is_clean(tmp_path: Path) -> None:
    bad = "from vllm import SamplingParams\nkw = dict(temperature=0)\nkw['do_sample'] = False\nSamplingParams(**kw)\n"
    good = "from vllm import SamplingParams\nkw = dict(temperature=0)\nkw['max_tokens'] = 8\nSamplingParams(**kw)\n"
    assert _found(tmp_path / "bad", {"a.py": bad}) == [("a.py", 3, "HVD001")]
    assert _found(tmp_path / "good", {"a.py": good}) == []


def test_a_dict_splat_is_never_rewritten_by_fix(tmp_path: Path) -> None:
    source = "from vllm import SamplingParams\nkw = dict(max_new_tokens=8)\nSamplingParams(**kw)\n"
    (tmp_path / "a.py").write_text(source, encoding="utf-8")
    result = run_doctor(["a.py", "--fix"], tmp_path)
    assert result.exit_code == 1
    assert (tmp_path / "a.py").read_text(encoding="utf-8") == source  # the dict may feed HF generate() too


def test_signature_of_the_class_is_not_reported_only_its_init(tmp_path: Path) -> None:
    head = "import inspect\nfrom vllm import SamplingParams\n"
    assert _found(tmp_path / "a", {"a.py": head + "p = inspect.signature(SamplingParams.__init__)\n"}) == [
        ("a.py", 3, "HVD018")]
    assert _found(tmp_path / "b", {"a.py": head + "p = inspect.signature(SamplingParams)\n"}) == []


def test_removed_api_message_relates_the_removal_to_the_pinned_version(tmp_path: Path) -> None:
    code = "from vllm import LLM\nllm = LLM(model='m', device='cuda')\n"
    for pin, expected in (("vllm==0.6.3\n", "works with the pinned `vllm==0.6.3` but breaks on vLLM >= 0.10.0"),
                          ("vllm>=0.8\n", "breaks on vLLM >= 0.10.0 (project pins `vllm>=0.8`")):
        root = tmp_path / pin.strip().replace("=", "").replace(">", "")
        root.mkdir()
        (root / "requirements.txt").write_text(pin, encoding="utf-8")
        (root / "a.py").write_text(code, encoding="utf-8")
        findings = scan([root], DoctorSettings(), root=root).findings
        assert [f.rule_id for f in findings] == ["HVD019"]
        assert expected in findings[0].message


def test_methods_and_keywords_the_installed_llm_has_are_not_reported(tmp_path: Path) -> None:
    assert _found(tmp_path, {"a.py": (
        "from vllm import LLM, SamplingParams\n"
        "llm = LLM(model='m', tensor_parallel_size=1, max_model_len=2048)\n"
        "out = llm.generate(['hi'], sampling_params=SamplingParams(max_tokens=4), use_tqdm=False)\n"
        "tok = llm.get_tokenizer()\n"
        "chat = llm.chat([{'role': 'user', 'content': 'hi'}])\n")}) == []


def test_stop_ids_from_a_single_special_token_are_fine(tmp_path: Path) -> None:
    code = ("from vllm import LLM, SamplingParams\nllm = LLM(model='m')\ntok = llm.get_tokenizer()\n"
            "a = SamplingParams(stop_token_ids=tok.encode('<|im_end|>', add_special_tokens=False))\n"
            "b = SamplingParams(stop_token_ids=[tok.encode('\\n')[-1]])\n"
            "c = SamplingParams(stop_token_ids=[tok.eos_token_id] + tok.additional_special_tokens_ids)\n")
    assert _found(tmp_path, {"a.py": code}) == [("a.py", 6, "HVD021")]


def test_a_split_marker_and_vllm_documented_prompt_are_not_placeholder_findings(tmp_path: Path) -> None:
    code = ("from vllm import LLM\nllm = LLM(model='Qwen/Qwen2-VL-2B-Instruct')\n"
            "parts = question.split('<image>')\n"
            "prompt = '<|vision_start|><|image_pad|><|vision_end|>' + parts[0]\n"
            "llm.generate({'prompt': prompt, 'multi_modal_data': {'image': img}})\n")
    assert _found(tmp_path, {"a.py": code}) == []


def test_placeholder_in_a_prompt_sent_without_any_image_is_reported(tmp_path: Path) -> None:
    code = "question = 'Describe it.'\nprompt = f'USER: <image>\\n{question} ASSISTANT:'\n"
    assert _found(tmp_path, {"a.py": code}) == [("a.py", 2, "HVD006")]


def test_docker_run_arguments_after_the_vllm_image_are_serve_flags(tmp_path: Path) -> None:
    run = "docker run --gpus all vllm/vllm-openai:latest --model Qwen/Qwen2.5-7B-Instruct"
    bad, good = f"{run} --gpu-memory-utilization 1.0\n", f"{run} --gpu-memory-utilization 0.9\n"
    other = "docker run --gpus all my/app:latest --gpu-memory-utilization 1.0\n"
    assert _found(tmp_path / "a", {"run.sh": bad}) == [("run.sh", 1, "HVD107")]
    assert _found(tmp_path / "b", {"run.sh": good}) == []
    assert _found(tmp_path / "c", {"run.sh": other}) == []


def test_compose_command_list_of_the_vllm_image_is_read(tmp_path: Path) -> None:
    compose = ("services:\n  llm:\n    image: vllm/vllm-openai:v0.9.0\n"
               "    command: [\"--model\", \"Qwen/Qwen2.5-0.5B-Instruct\", \"--tensor-parallel-size\", \"4\"]\n")
    assert _found(tmp_path, {"compose.yml": compose}) == [("compose.yml", 4, "HVD102")]


def test_latin1_python_with_a_coding_cookie_is_decoded_and_checked(tmp_path: Path) -> None:
    source = ("# -*- coding: latin-1 -*-\n# r\xe9sum\xe9 des r\xe9glages\n"
              "from vllm import SamplingParams\np = SamplingParams(max_new_tokens=8)\n").encode("latin-1")
    assert _found(tmp_path, {"a.py": source}) == [("a.py", 4, "HVD001")]


def test_undecodable_and_unparsable_files_make_the_run_fail(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_bytes("x = 'caf\xe9'\n".encode("latin-1"))  # no coding cookie: not UTF-8
    (tmp_path / "serve.yaml").write_bytes("model: caf\xe9\n".encode("latin-1"))
    report = scan([tmp_path], DoctorSettings(), root=tmp_path)
    assert report.findings == []
    assert sorted(e.split(":")[0] for e in report.parse_errors) == ["a.py", "serve.yaml"]
    result = run_doctor(["."], tmp_path)
    assert result.exit_code == 1
    assert "not checked" in result.stdout


def test_a_syntax_error_alone_does_not_exit_0(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def f(:\n", encoding="utf-8")
    result = run_doctor(["."], tmp_path)
    assert result.exit_code == 1
    assert "broken.py:1: cannot parse Python" in result.stdout


def test_binary_files_of_unknown_kind_are_ignored_not_reported(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(bytes(range(256)))
    (tmp_path / "ok.py").write_text("x = 1\n", encoding="utf-8")
    assert run_doctor(["."], tmp_path).exit_code == 0


def test_hf_float16_in_one_module_and_vllm_auto_in_another_disagree(tmp_path: Path) -> None:
    hf = ("import torch\nfrom transformers import AutoModelForCausalLM\n"
          "m = AutoModelForCausalLM.from_pretrained('org/m-7b', torch_dtype=torch.float16)\n")
    bad = "from vllm import LLM\nllm = LLM(model='org/m-7b')\n"
    good = "from vllm import LLM\nllm = LLM(model='org/m-7b', dtype='half')\n"
    other = "from vllm import LLM\nllm = LLM(model='org/other-7b')\n"
    assert _found(tmp_path / "a", {"hf.py": hf, "serve.py": bad}) == [("serve.py", 2, "HVD013")]
    assert _found(tmp_path / "b", {"hf.py": hf, "serve.py": good}) == []
    assert _found(tmp_path / "c", {"hf.py": hf, "serve.py": other}) == []


def test_sampling_params_attributes_set_after_construction_are_checked(tmp_path: Path) -> None:
    code = ("from vllm import SamplingParams\n"
            "def convert(hf):\n"
            "    sp = SamplingParams()\n"
            "    sp.max_tokens = hf.get('max_length')\n"
            "    sp.use_beam_search = True\n"
            "    sp.temperature = hf.get('temperature')\n"
            "    return sp\n")
    assert _found(tmp_path, {"a.py": code}) == [("a.py", 4, "HVD001"), ("a.py", 5, "HVD002")]


def test_removed_imports_are_reported_and_current_ones_are_not(tmp_path: Path) -> None:
    code = ("from vllm import LLM, SamplingParams\n"
            "from vllm.sampling_params import GuidedDecodingParams\n"
            "from vllm.model_executor.parallel_utils.parallel_state import destroy_model_parallel\n"
            "from vllm.inputs import TokensPrompt\n")
    assert _found(tmp_path, {"a.py": code}) == [("a.py", 2, "HVD019"), ("a.py", 3, "HVD019")]


def test_openai_request_bodies_are_not_vllm_prompt_dicts(tmp_path: Path) -> None:
    code = ("from vllm import LLM\n"
            "body = {'model': 'm', 'prompt': 'hi', 'temperature': 0, 'max_tokens': 8}\n"
            "req = {'prompt': 'hi', 'max_tokens': 8}\n")
    assert _found(tmp_path, {"a.py": code}) == []


def test_one_prompt_builder_per_model_is_judged_against_its_own_model(tmp_path: Path) -> None:
    code = ("from vllm import LLM\n"
            "def llava(q):\n    llm = LLM(model='llava-hf/llava-1.5-7b-hf')\n"
            "    return llm, f'USER: <image>\\n{q} ASSISTANT:'\n"
            "def qwen(q):\n    llm = LLM(model='Qwen/Qwen2-VL-2B-Instruct')\n"
            "    return llm, f'USER: <image>\\n{q} ASSISTANT:'\n"
            "def run(llm, prompt, image):\n"
            "    return llm.generate({'prompt': prompt, 'multi_modal_data': {'image': image}})\n")
    assert _found(tmp_path, {"a.py": code}) == [("a.py", 7, "HVD006")]


def test_sampling_params_built_but_not_passed_leave_generate_on_defaults(tmp_path: Path) -> None:
    head = "from vllm import LLM, SamplingParams\nllm = LLM(model='m')\nsp = SamplingParams(max_tokens=256)\n"
    assert _found(tmp_path / "a", {"a.py": head + "out = llm.generate(['hi'])\n"}) == [("a.py", 4, "HVD020")]
    assert _found(tmp_path / "b", {"a.py": head + "out = llm.generate(['hi'], sp)\n"}) == []


def test_removed_serve_flags_are_judged_by_the_image_tag_when_there_is_one(tmp_path: Path) -> None:
    old = "docker run --gpus all vllm/vllm-openai:v0.8.5 --model m --swap-space 4\n"
    new = "docker run --gpus all vllm/vllm-openai:v0.19.0 --model m --swap-space 4\n"
    plain = "vllm serve m --disable-log-requests\n"
    for name, script, expected in (("old", old, "works with the image `vllm/vllm-openai:v0.8.5` but breaks"),
                                   ("new", new, "the image `vllm/vllm-openai:v0.19.0` refuses it"),
                                   ("plain", plain, "absent from the installed vLLM")):
        root = tmp_path / name
        root.mkdir()
        (root / "run.sh").write_text(script, encoding="utf-8")
        findings = scan([root], DoctorSettings(), root=root).findings
        assert [f.rule_id for f in findings] == ["HVD109"] and expected in findings[0].message
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "run.sh").write_text("vllm serve m --max-model-len 4096\n", encoding="utf-8")
    assert scan([clean], DoctorSettings(), root=clean).findings == []


def test_none_in_stop_ids_is_reported_where_samplingparams_validates_it(tmp_path: Path) -> None:
    constructed = ("from vllm import SamplingParams\n"
                   "def convert(hf):\n"
                   "    return SamplingParams(stop_token_ids=[hf.get('eos_token_id'), None])\n")
    # Set after construction nothing validates it and a None id never matches: harmless, not reported.
    assigned = ("from vllm import SamplingParams\n"
                "def convert(hf):\n"
                "    sp = SamplingParams()\n"
                "    sp.stop_token_ids = [hf.get('eos_token_id'), None]\n"
                "    return sp\n")
    assert _found(tmp_path / "a", {"a.py": constructed}) == [("a.py", 3, "HVD021")]
    assert _found(tmp_path / "b", {"a.py": assigned}) == []
    assert _found(tmp_path / "c", {"a.py": constructed.replace(", None]", "]")}) == []


def test_sarif_of_a_run_with_unreadable_files_validates_and_names_them(tmp_path: Path) -> None:
    import json

    import jsonschema

    schema = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    (tmp_path / "broken.py").write_text("def f(:\n", encoding="utf-8")
    (tmp_path / "serve.sh").write_text("vllm serve m --swap-space 4\n", encoding="utf-8")
    result = run_doctor([".", "--format", "sarif"], tmp_path)
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(schema).validate(log)
    notes = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert [n["level"] for n in notes] == ["error"] and "broken.py" in notes[0]["message"]["text"]
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["HVD109"]
    assert result.exit_code == 1


def test_placeholder_template_with_an_unfilled_field_is_reported(tmp_path: Path) -> None:
    head = ("from vllm import LLM\nllm = LLM(model='llava-hf/llava-1.5-7b-hf')\n"
            "TEMPLATE = 'USER: <image>\\n{question} ASSISTANT:'\n")
    bad = head + "out = llm.generate({'prompt': TEMPLATE, 'multi_modal_data': {'image': img}})\n"
    good = head + "out = llm.generate({'prompt': TEMPLATE.format(question=q), 'multi_modal_data': {'image': img}})\n"
    prose = "RULE_TEXT = 'a template such as USER: <image>\\n{question} needs filling'\n"
    assert _found(tmp_path / "a", {"a.py": bad}) == [("a.py", 3, "HVD006")]
    assert _found(tmp_path / "b", {"a.py": good}) == []
    assert _found(tmp_path / "c", {"a.py": prose}) == []


def test_imports_guarded_by_try_except_are_compat_code_not_drift(tmp_path: Path) -> None:
    code = ("try:\n    from vllm.sampling_params import GuidedDecodingParams\n"
            "except ImportError:\n    GuidedDecodingParams = None\n")
    assert _found(tmp_path, {"a.py": code}) == []


def test_private_engine_calls_with_their_old_keywords_are_reported(tmp_path: Path) -> None:
    code = ("from vllm import LLM, SamplingParams\n"
            "llm = LLM(model='m')\n"
            "llm._add_request(prompt=None, prompt_token_ids=[1, 2], sampling_params=SamplingParams(max_tokens=1))\n"
            "llm.set_tokenizer(None)\n")
    found = scan([_write(tmp_path, code)], DoctorSettings(), root=tmp_path).findings
    assert [(f.line, f.rule_id) for f in found] == [(3, "HVD019"), (3, "HVD019"), (4, "HVD019")]
    assert {m for f in found for m in ("prompt_token_ids", "sampling_params", "set_tokenizer") if m in f.message} == {
        "prompt_token_ids", "sampling_params", "set_tokenizer"}


def _write(root: Path, code: str) -> Path:
    (root / "a.py").write_text(code, encoding="utf-8")
    return root
