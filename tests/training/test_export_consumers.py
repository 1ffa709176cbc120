"""Exports as their consumers read them: the Modelfile rendered by Go's text/template (as Ollama
renders it) with and without a system message, the GGUF keys llama.cpp's converter writes, an
adapter without pickles whose base a user can resolve."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from selftune.export import EMBEDDED_HUB_ID, export_run, modelfile, write_gguf
from selftune.twin import Twin

GO_RENDER = Path(__file__).parent / "go" / "render.go"
TWIN = Twin(("Mags",), "You are {owner}. You are chatting on {platform} in '{conversation}'.")
WITH_SYSTEM = [
    {"role": "system", "content": "You are Mags. Reply as Mags would."},
    {"role": "user", "content": 'Tobias: bees ok? "quoted" {{ braces }}'},
    {"role": "assistant", "content": "grand, 2 new queens"},
    {"role": "user", "content": "pics??"},
]
WITHOUT_SYSTEM = WITH_SYSTEM[1:]


def template_of(text: str) -> str:
    return text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]


def go_render(template: str, cases: list[dict], tmp_path: Path) -> list[str]:
    env = {**os.environ, "GOCACHE": str(tmp_path / "gocache"), "GOFLAGS": "-mod=mod"}
    done = subprocess.run(
        ["go", "run", str(GO_RENDER)],
        input=json.dumps({"template": template, "cases": cases}).encode(),
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().split("\x00")[:-1]


@pytest.mark.skipif(shutil.which("go") is None, reason="needs Go (Debian: golang-go)")
def test_ollama_renders_the_modelfile_like_training_with_and_without_a_system_message(
    tokenizer_dir, tmp_path
):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    system = TWIN.system()
    text = modelfile(tokenizer, "model-f16.gguf", system, ["q8_0"])
    assert f'SYSTEM """{system}"""' in text.splitlines()

    def training(messages: list[dict]) -> str:
        return tokenizer.apply_chat_template(
            TWIN.chat_messages(messages), tokenize=False, add_generation_prompt=True
        )

    def as_go(messages: list[dict], system: str = "") -> dict:
        return {"System": system, "Messages": [{"Role": m["role"], "Content": m["content"]}
                                                for m in messages]}  # fmt: skip

    ollama_prepends = [{"role": "system", "content": system}, *WITHOUT_SYSTEM]
    cases = [
        as_go(WITH_SYSTEM, WITH_SYSTEM[0]["content"]),  # the client's own system message
        as_go(ollama_prepends, system),  # Ollama puts SYSTEM first when the request has none
        as_go(WITHOUT_SYSTEM),  # SYSTEM cleared: the template's own branch
        as_go(WITHOUT_SYSTEM[:1]),
    ]
    rendered = go_render(template_of(text), cases, tmp_path)
    expected = [training(WITH_SYSTEM), training(WITHOUT_SYSTEM), training(WITHOUT_SYSTEM),
                training(WITHOUT_SYSTEM[:1])]  # fmt: skip
    assert rendered == expected
    # the base's stock prompt ("You are a helpful AI assistant named SmolLM...") never appears
    assert all("SmolLM" not in r for r in rendered)


def test_gguf_carries_the_keys_llamacpp_and_ollama_read(tiny_model_dir, tmp_path):
    import gguf

    path = write_gguf(Path(tiny_model_dir), tmp_path / "t.gguf", "q8_0", name="mags 20261201")
    reader = gguf.GGUFReader(path)

    def value(key: str):  # type: ignore[no-untyped-def]
        field = reader.fields[key]
        return field.contents()

    assert value("general.name") == "mags 20261201"
    assert value("tokenizer.ggml.add_bos_token") is False
    assert value("general.quantization_version") == gguf.GGML_QUANT_VERSION
    assert value("llama.attention.key_length") == 64 // 4
    assert value("llama.attention.value_length") == 64 // 4


def make_run(tiny_model_dir: Path, run_dir: Path, base: str) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    model.save_pretrained(run_dir / "adapter")
    torch.save({"lr": 1e-4}, run_dir / "adapter" / "training_args.bin")  # as Trainer leaves it
    (run_dir / "run.json").write_text(json.dumps({"base": base}))
    return run_dir


def test_exported_adapter_has_no_pickle_and_a_base_a_user_can_resolve(tiny_model_dir, tmp_path):
    run = make_run(Path(tiny_model_dir), tmp_path / "20261201-090000", "embedded")
    written = export_run(run, tmp_path / "export", ("adapter",))
    adapter = Path(written["adapter"])
    assert not list(adapter.glob("*.bin"))
    for f in adapter.rglob("*"):
        if f.is_file():
            head = f.read_bytes()[:2]
            assert head != b"\x80\x04" and not f.name.endswith((".pt", ".pkl")), f
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == EMBEDDED_HUB_ID


def test_export_names_the_gguf_after_the_twin_and_points_ollama_at_f16(tiny_model_dir, tmp_path):
    import gguf

    run = make_run(Path(tiny_model_dir), tmp_path / "20261201-090000", str(tiny_model_dir))
    written = export_run(
        run, tmp_path / "export", ("adapter", "f16", "q8_0"), "mags", TWIN.system()
    )
    config = json.loads((Path(written["adapter"]) / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)  # a path the user gave
    name = gguf.GGUFReader(written["f16"]).fields["general.name"].contents()
    assert name == "mags 20261201-090000"
    lines = Path(written["modelfile"]).read_text().splitlines()
    assert "FROM ./model-f16.gguf" in lines
    assert any("q8_0" in line and line.startswith("#") for line in lines)
    assert not [p for p in Path(tmp_path / "export").rglob("*.bin")]


def test_export_command_puts_the_twins_prompt_in_the_modelfile(tiny_model_dir, tmp_path):
    from click.testing import CliRunner

    from selftune.cli import cli
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"], name="mags")
    run = make_run(Path(tiny_model_dir), ws.artefacts.new_run().path, str(tiny_model_dir))
    result = CliRunner().invoke(
        cli, ["export", "--workspace", str(ws.root), "--format", "adapter", "--format", "f16"]
    )
    assert result.exit_code == 0, result.output
    text = (run / "export" / "Modelfile").read_text()
    assert 'SYSTEM """You are Mags. You are chatting on WhatsApp' in text
    assert "vLLM" in result.output


def test_auto_serves_the_f16_export_not_q8_0(tmp_path):
    """q8_0's greedy text drifts from the trained model's (docs/serving.md); f16's does not."""
    from selftune.engines import ModelSpec, find_gguf

    export = tmp_path / "run" / "export"
    export.mkdir(parents=True)
    for kind in ("q8_0", "f16"):
        (export / f"model-{kind}.gguf").write_bytes(b"GGUF")
    assert find_gguf(ModelSpec("twin", "embedded", tmp_path / "run")).name == "model-f16.gguf"
    (export / "model-f16.gguf").unlink()
    assert find_gguf(ModelSpec("twin", "embedded", tmp_path / "run")).name == "model-q8_0.gguf"
