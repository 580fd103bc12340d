"""``hf2vllm doctor`` on the command line: formats, exit codes, rule selection, config, --fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from doctor_support import planted_bugs, run_doctor, write_example

from hf2vllm.doctor import RULES_BY_ID

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


def test_exit_code_is_1_when_an_error_level_finding_exists(tmp_path: Path) -> None:
    write_example(tmp_path, RULES_BY_ID["HVD001"].bad)  # error severity
    result = run_doctor(["."], tmp_path)
    assert result.exit_code == 1
    assert "HVD001" in result.stdout and "generate_vllm.py" in result.stdout


def test_exit_code_is_0_with_only_warnings(tmp_path: Path) -> None:
    write_example(tmp_path, RULES_BY_ID["HVD101"].bad)  # warning severity
    result = run_doctor(["."], tmp_path)
    assert result.exit_code == 0
    assert "HVD101" in result.stdout


def test_exit_code_is_0_on_a_clean_tree(tmp_path: Path) -> None:
    write_example(tmp_path, RULES_BY_ID["HVD001"].good)
    result = run_doctor(["."], tmp_path)
    assert result.exit_code == 0
    assert "0 error(s), 0 warning(s)" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--select", "HVD999"], "unknown rule id or prefix 'HVD999'"),
    (["--ignore", "XYZ"], "unknown rule id or prefix 'XYZ'"),
    (["missing_dir"], "missing_dir: no such file or directory"),
    (["--format", "markdown"], "--format markdown is only for --list-rules"),
    (["--fix", "--diff"], "--fix and --diff exclude each other"),
    (["--model-config", "nope.json"], "nope.json: no such file"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_doctor(args, tmp_path)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    assert run_doctor(["--format", "xml"], tmp_path).exit_code == 2


def test_terminal_output_groups_by_file_with_code_excerpt(fixture_copy) -> None:
    root = fixture_copy("chat_migration")
    result = run_doctor(["."], root)
    out = result.stdout
    # each file header appears once, findings follow with the offending source line
    for path in ("client.py", "deploy/serve_prod.sh", "parity_eval.py"):
        assert out.count(f"\n{path}\n") + out.startswith(f"{path}\n") == 1, path
    assert "max_new_tokens=max_new_tokens" in out  # excerpt of the HVD001 line
    assert "fix:" in out
    assert result.exit_code == 1


def test_json_output_lists_every_finding(fixture_copy) -> None:
    root = fixture_copy("chat_migration")
    result = run_doctor([".", "--format", "json"], root)
    data = json.loads(result.stdout)
    found = {(f["path"], f["line"], f["rule_id"]) for f in data["findings"]}
    assert found == planted_bugs(root)
    assert data["summary"]["errors"] == sum(f["severity"] == "error" for f in data["findings"])
    assert result.exit_code == 1


def test_sarif_output_validates_against_the_sarif_2_1_0_schema(fixture_copy) -> None:
    root = fixture_copy("vision_pooling")
    result = run_doctor([".", "--format", "sarif"], root)
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert {r["id"] for r in rules} == set(RULES_BY_ID)
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
    located = {(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                r["locations"][0]["physicalLocation"]["region"]["startLine"], r["ruleId"]) for r in run["results"]}
    assert located == planted_bugs(root)
    levels = {r["level"] for r in run["results"]}
    assert levels <= {"error", "warning", "note"} and "error" in levels


def test_sarif_schema_rejects_a_broken_log() -> None:
    # The validation above can fail: a result without a message is invalid SARIF.
    broken = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"ruleId": "A"}]}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(SCHEMA).validate(broken)


def test_sarif_on_a_clean_tree_is_valid_and_empty(tmp_path: Path) -> None:
    write_example(tmp_path, RULES_BY_ID["HVD101"].good)
    result = run_doctor([".", "-f", "sarif"], tmp_path)
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)
    assert log["runs"][0]["results"] == []
    assert result.exit_code == 0


def test_select_and_ignore_filter_rules_by_id_and_prefix(fixture_copy) -> None:
    root = fixture_copy("chat_migration")
    server_only = json.loads(run_doctor([".", "-f", "json", "--select", "HVD1"], root).stdout)
    assert server_only["findings"] and all(f["rule_id"].startswith("HVD1") for f in server_only["findings"])
    some = json.loads(run_doctor([".", "-f", "json", "--select", "HVD001,HVD016", "--ignore", "HVD016"],
                                 root).stdout)
    assert {f["rule_id"] for f in some["findings"]} == {"HVD001"}


def test_warnings_only_selection_exits_0_even_if_errors_exist_elsewhere(fixture_copy) -> None:
    root = fixture_copy("chat_migration")
    assert run_doctor([".", "--select", "HVD101,HVD106"], root).exit_code == 0


def test_pyproject_section_sets_workload_and_exclusions(fixture_copy) -> None:
    root = fixture_copy("vision_pooling")
    data = json.loads(run_doctor([".", "-f", "json"], root).stdout)
    assert ("deploy/captioner.yaml", 8, "HVD103") in {(f["path"], f["line"], f["rule_id"]) for f in data["findings"]}
    assert not any(f["path"].startswith("scratch/") for f in data["findings"])
    # the excluded file does have a bug: naming it explicitly scans it
    direct = json.loads(run_doctor(["scratch/old_experiment.py", "-f", "json"], root).stdout)
    assert [f["rule_id"] for f in direct["findings"]] == ["HVD001"]


def test_pyproject_ignore_list_and_cli_override(tmp_path: Path) -> None:
    write_example(tmp_path, RULES_BY_ID["HVD001"].bad)
    (tmp_path / "pyproject.toml").write_text('[tool.hf2vllm.doctor]\nignore = ["HVD001"]\n', encoding="utf-8")
    assert run_doctor(["."], tmp_path).exit_code == 0
    (tmp_path / "pyproject.toml").write_text('[tool.hf2vllm.doctor]\nworkload-max-tokens = "lots"\n',
                                             encoding="utf-8")
    bad = run_doctor(["."], tmp_path)
    assert bad.exit_code == 2 and "workload-max-tokens" in bad.stderr


def test_workload_option_drives_max_model_len_rule(tmp_path: Path) -> None:
    (tmp_path / "serve.sh").write_text("vllm serve m --max-model-len 16384\n", encoding="utf-8")
    assert "HVD103" not in run_doctor(["."], tmp_path).stdout  # no workload known: no judgement
    flagged = json.loads(run_doctor([".", "-f", "json", "--workload-max-tokens", "1024"], tmp_path).stdout)
    assert [f["rule_id"] for f in flagged["findings"]] == ["HVD103"]
    fine = json.loads(run_doctor([".", "-f", "json", "--workload-max-tokens", "8192"], tmp_path).stdout)
    assert fine["findings"] == []


def test_model_config_sizes_the_model_for_tensor_parallel_rule(tmp_path: Path) -> None:
    (tmp_path / "serve.sh").write_text("vllm serve /models/ours --tensor-parallel-size 2\n", encoding="utf-8")
    small = {"hidden_size": 576, "num_hidden_layers": 30, "intermediate_size": 1536, "vocab_size": 49152,
             "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True}
    (tmp_path / "small.json").write_text(json.dumps(small), encoding="utf-8")
    big = {"hidden_size": 16384, "num_hidden_layers": 126, "intermediate_size": 53248, "vocab_size": 128256,
           "num_attention_heads": 128, "num_key_value_heads": 8}
    (tmp_path / "big.json").write_text(json.dumps(big), encoding="utf-8")
    assert "HVD102" not in run_doctor(["serve.sh"], tmp_path).stdout  # size unknown: silent
    small_run = json.loads(run_doctor(["serve.sh", "-f", "json", "--model-config", "small.json"], tmp_path).stdout)
    assert [f["rule_id"] for f in small_run["findings"]] == ["HVD102"]
    assert "~0.13B" in small_run["findings"][0]["message"]
    big_run = json.loads(run_doctor(["serve.sh", "-f", "json", "--model-config", "big.json"], tmp_path).stdout)
    assert big_run["findings"] == []  # ~405B does not fit one 80 GiB device


def test_fix_renames_hf_kwargs_preserving_formatting_and_shows_diff(tmp_path: Path) -> None:
    source = (
        "from vllm import SamplingParams\n"
        "\n"
        "params = SamplingParams(\n"
        "    max_new_tokens = 128,   # answer budget\n"
        "    temperature=0.7,\n"
        "    num_return_sequences=2, do_sample=True,\n"
        ")\n"
        "kept = SamplingParams(max_new_tokens=8)  # hf2vllm: ignore[HVD001]\n"
    )
    (tmp_path / "gen.py").write_text(source, encoding="utf-8")
    result = run_doctor(["--fix", "gen.py"], tmp_path)
    fixed = (tmp_path / "gen.py").read_text(encoding="utf-8")
    assert fixed == source.replace("max_new_tokens = 128", "max_tokens = 128").replace(
        "num_return_sequences=2", "n=2")
    assert "-    max_new_tokens = 128,   # answer budget" in result.stdout
    assert "+    max_tokens = 128,   # answer budget" in result.stdout
    # do_sample has no mechanical rewrite: still reported, so the run still fails
    assert result.exit_code == 1
    assert "do_sample" in result.stdout and "2 fixed" in result.stdout


def test_fix_and_columns_count_characters_not_bytes(tmp_path: Path) -> None:
    source = 'from vllm import SamplingParams\np = SamplingParams(stop=["ü€"], max_new_tokens=4, temperature=0)\n'
    (tmp_path / "gen.py").write_text(source, encoding="utf-8")
    report = json.loads(run_doctor(["gen.py", "-f", "json"], tmp_path).stdout)
    assert report["findings"][0]["column"] == source.splitlines()[1].index("max_new_tokens") + 1
    run_doctor(["--fix", "gen.py"], tmp_path)
    assert (tmp_path / "gen.py").read_text(encoding="utf-8") == source.replace("max_new_tokens", "max_tokens")


def test_diff_previews_without_writing(tmp_path: Path) -> None:
    source = "from vllm import SamplingParams\np = SamplingParams(max_new_tokens=4, temperature=0)\n"
    (tmp_path / "gen.py").write_text(source, encoding="utf-8")
    result = run_doctor(["--diff", "gen.py"], tmp_path)
    assert "+p = SamplingParams(max_tokens=4, temperature=0)" in result.stdout
    assert (tmp_path / "gen.py").read_text(encoding="utf-8") == source
    assert result.exit_code == 1


def test_fix_on_fixture_resolves_exactly_the_fixable_findings(fixture_copy) -> None:
    root = fixture_copy("chat_migration")
    before = json.loads(run_doctor([".", "-f", "json"], root).stdout)
    fixable = [f for f in before["findings"] if f["fixable"]]
    assert fixable, "the fixture plants a max_new_tokens in SamplingParams"
    after = json.loads(run_doctor([".", "-f", "json", "--fix"], root).stdout)
    assert after["summary"]["fixed"] == len(fixable)
    remaining = {(f["path"], f["line"], f["rule_id"]) for f in after["findings"]}
    assert remaining == {(f["path"], f["line"], f["rule_id"]) for f in before["findings"] if not f["fixable"]}


def test_list_rules_markdown_is_the_committed_rules_doc(tmp_path: Path) -> None:
    result = run_doctor(["--list-rules", "--format", "markdown"], tmp_path)
    committed = (Path(__file__).parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    assert result.stdout == committed
    listing = run_doctor(["--list-rules"], tmp_path)
    assert all(rule_id in listing.stdout for rule_id in RULES_BY_ID)


def test_console_script_is_wired_into_the_main_cli(tmp_path: Path) -> None:
    """The installed ``hf2vllm`` entry point runs the doctor (exit code and one-line errors included)."""
    write_example(tmp_path, RULES_BY_ID["HVD001"].bad)
    cli = [sys.executable, "-c", "from hf2vllm.cli import main; main()"]
    ran = subprocess.run([*cli, "doctor", ".", "-f", "json"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 1, ran.stderr
    assert json.loads(ran.stdout)["findings"][0]["rule_id"] == "HVD001"
    usage = subprocess.run([*cli, "doctor", "--select", "NOPE"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
    assert usage.returncode == 2
    assert usage.stderr.strip().startswith("error: unknown rule id or prefix 'NOPE'")
