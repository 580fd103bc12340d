"""Launch-command parsing: shell scripts, YAML (vLLM config, Kubernetes, compose), Python argument lists."""

from __future__ import annotations

import shlex

from hypothesis import given, settings
from hypothesis import strategies as st

from hf2vllm.doctor.python_source import PythonModule
from hf2vllm.doctor.shell import parse_shell
from hf2vllm.doctor.yaml_config import parse_yaml_invocations

VALUE_FLAGS = ["max-model-len", "tensor-parallel-size", "gpu-memory-utilization", "port", "served-model-name",
               "reasoning-parser", "dtype"]
BOOL_FLAGS = ["enforce-eager", "trust-remote-code", "no-enable-prefix-caching"]
values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._/-", min_size=1, max_size=12).filter(
    lambda v: not v.startswith("-"))


@settings(max_examples=60, deadline=None)
@given(
    flags=st.lists(st.one_of(st.tuples(st.sampled_from(VALUE_FLAGS), values),
                             st.tuples(st.sampled_from(BOOL_FLAGS), st.none())),
                   unique_by=lambda f: f[0], max_size=7),
    per_line=st.integers(min_value=1, max_value=3),
    equals=st.booleans(),
    prefix=st.sampled_from(["", "OMP_NUM_THREADS=4 ", "exec ", "nohup ", "CUDA_VISIBLE_DEVICES=0,1 "]),
    suffix=st.sampled_from(["", " &", " > log.txt 2>&1 &", " | tee serve.log"]),
)
def test_shell_serve_command_round_trips_flags_and_lines(flags, per_line, equals, prefix, suffix) -> None:
    words = []
    for name, value in flags:
        if value is None:
            words.append([f"--{name}"])
        else:
            words.append([f"--{name}={shlex.quote(value)}"] if equals else [f"--{name}", shlex.quote(value)])
    lines = [f"{prefix}vllm serve org/model-1B"]
    expected_lines = {}
    for i in range(0, len(words), per_line):
        chunk = words[i:i + per_line]
        lines[-1] += " \\"
        lines.append("  " + " ".join(" ".join(w) for w in chunk))
        for name, _ in flags[i:i + per_line]:
            expected_lines[name] = len(lines) + 1  # script starts with a shebang line
    lines[-1] += suffix
    script = "#!/bin/bash\n" + "\n".join(lines) + "\necho done\n"
    (inv,) = parse_shell(script).invocations
    assert inv.model == "org/model-1B"
    assert inv.line == 2
    assert {k: v.value for k, v in inv.flags.items()} == {n: (v if v is not None else "") for n, v in flags}
    assert {k: v.line for k, v in inv.flags.items()} == expected_lines
    assert ("OMP_NUM_THREADS" in inv.env) == prefix.startswith("OMP")


@given(st.text(max_size=300))
def test_shell_parser_never_crashes(text: str) -> None:
    for inv in parse_shell(text).invocations:
        assert inv.line >= 1


def test_loops_exports_variables_and_python_module_launches() -> None:
    script = """\
MODEL=Qwen/Qwen2.5-1.5B-Instruct
export OMP_NUM_THREADS=4
for i in 0 1; do
  vllm serve "$MODEL" --port "800$i" &
done
python3 -m vllm.entrypoints.openai.api_server --model "${MODEL}" --max-model-len=4k
"""
    first, second = parse_shell(script).invocations
    assert first.in_loop and first.model == "Qwen/Qwen2.5-1.5B-Instruct" and first.env["OMP_NUM_THREADS"] == "4"
    assert not second.in_loop and second.model == "Qwen/Qwen2.5-1.5B-Instruct" and second.line == 6
    # vLLM's human_readable_int: lower-case k is 1000, upper-case K is 1024.
    assert second.number("max-model-len") == 4000
    assert parse_shell("vllm serve m --max-model-len 4K\n").invocations[0].number("max-model-len") == 4096


def test_heredoc_bodies_are_not_commands() -> None:
    script = "cat > notes.txt <<EOF\nvllm serve m --enforce-eager\nEOF\nvllm serve real --port 1\n"
    (inv,) = parse_shell(script).invocations
    assert inv.model == "real" and inv.line == 4


def test_yaml_config_compose_and_kubernetes_forms() -> None:
    config = "model: m\nenforce-eager: true\nmax_model_len: 8192\n"
    (inv,) = parse_yaml_invocations(config)
    assert inv.bool_flag("enforce-eager") is True and inv.flags["max-model-len"].line == 3
    compose = "services:\n  llm:\n    image: vllm\n    command: vllm serve m --tensor-parallel-size 2\n"
    (inv,) = parse_yaml_invocations(compose)
    assert inv.flags["tensor-parallel-size"].value == "2" and inv.flags["tensor-parallel-size"].line == 4
    k8s = ("spec:\n  containers:\n    - command: [vllm, serve]\n      env:\n        - name: OMP_NUM_THREADS\n"
           "          value: '2'\n      args:\n        - m\n        - --port\n        - '8000'\n")
    (inv,) = parse_yaml_invocations(k8s)
    assert inv.model == "m" and inv.flags["port"].line == 9 and inv.env == {"OMP_NUM_THREADS": "2"}
    assert parse_yaml_invocations("name: not a vllm file\nitems: [1, 2]\n") == []


def test_python_subprocess_argument_lists_are_launches() -> None:
    module = PythonModule.parse('cmd = ["vllm", "serve", MODEL,\n       "--enforce-eager"]\n')
    (inv,) = module.serve_invocations
    assert inv.model is None and inv.flags["enforce-eager"].line == 2
