"""What the stages share has one owner: the twin's prompt (train == serve), the artefact folders
(full runs load, bench folders do not hide reports, unfinished runs do not hide finished ones)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from selftune.cli import cli as main
from selftune.twin import without_memory


class RecordingEngine:
    """Answers every request with a fixed text and remembers the prompts it was given."""

    name = "recording"
    model_id = "twin"

    def __init__(self, tokenizer):  # type: ignore[no-untyped-def]
        self.tokenizer = tokenizer
        self.prompts: list[str] = []

    def generate(self, requests):  # type: ignore[no-untyped-def]
        from selftune.engines import GenResult

        self.prompts += [r.prompt for r in requests]
        return [GenResult(["ok"] * r.n, 1, [1] * r.n, ["stop"] * r.n) for r in requests]


def _held_out_direct_chat(ws, dataset_id: str):  # type: ignore[no-untyped-def]
    """A held-out example of a one-to-one chat, its conversation title and the month it is in."""
    from selftune.artefacts import read_split

    with ws.open_store() as store:
        titles = {m.conversation_id: m.conversation_title for m in store.messages()}
    for record in read_split(ws.datasets_dir / dataset_id, "valid"):
        meta = record["_meta"]
        if "messages" not in record or meta.get("conversation_kind") != "direct":
            continue
        when = datetime.fromisoformat(meta["start"])
        system = without_memory(record["messages"][0]["content"])
        if system.endswith(f"It is {when:%B %Y}.") and system != record["messages"][0]["content"]:
            return record, titles[meta["conversation"]], when
    raise AssertionError("the example has no held-out one-to-one chat")


def test_served_prompt_is_the_trained_prompt(example_workspace, tokenizer_dir, monkeypatch) -> None:
    """/v1/reply and /v1/chat/completions (no system message) render a held-out example's
    conversation to exactly the string training rendered for it, memory block included (the
    reply to the example's first message: the block is made from what came before it)."""
    from fastapi.testclient import TestClient
    from transformers import AutoTokenizer

    from selftune import twin
    from selftune.dataset import run_build
    from selftune.engines import ModelSpec
    from selftune.memory import Memory
    from selftune.server import ServerState, create_app

    ws = example_workspace
    ws.config.train.base = str(tokenizer_dir)
    _, dataset_id = run_build(ws)
    record, title, when = _held_out_direct_chat(ws, dataset_id)
    monkeypatch.setattr(twin, "now", lambda: when)
    first_reply = next(i for i, m in enumerate(record["messages"]) if m["role"] == "assistant")
    context = record["messages"][:first_reply]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    trained = tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True)

    engine = RecordingEngine(tokenizer)
    state = ServerState(
        catalog={"twin": ModelSpec("twin", "tiny")},
        build=ws.config.build,
        me=list(ws.config.me),
        engines={"twin": engine},
        memory=Memory.from_workspace(ws),
    )
    client = TestClient(create_app(state), base_url="http://127.0.0.1")
    turns = [
        {"author": "Mags" if m["role"] == "assistant" else title, "text": m["content"]}
        for m in context[1:]
    ]
    source = record["_meta"]["source"]
    reply = client.post(
        "/v1/reply", json={"messages": turns, "platform": source, "conversation": title, "n": 1}
    )
    assert reply.status_code == 200, reply.text
    assert engine.prompts[-1] == trained

    # an OpenAI client that sends no system message gets the twin's prompt, not the base's
    chat = client.post(
        "/v1/chat/completions",
        json={"model": "twin", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    )
    assert chat.status_code == 200, chat.text
    system = twin.Twin.from_config(ws.config).system()
    assert engine.prompts[-1].startswith(
        tokenizer.apply_chat_template([{"role": "system", "content": system}], tokenize=False)
    )
    assert "SmolLM" not in engine.prompts[-1]
    state.close()


def test_a_full_fine_tune_is_used_by_sample_and_serve(example_workspace, tiny_model_dir) -> None:
    from selftune.dataset import run_build
    from selftune.engines import model_catalog, open_engine
    from selftune.training import run_train

    ws = example_workspace
    ws.config.train.base = str(tiny_model_dir)
    _, dataset_id = run_build(ws)
    overrides = {"method": "full", "max_steps": 1, "max_seq_len": 64, "precision": "fp32"}
    summary, run_dir = run_train(ws, dataset_id, overrides=overrides)
    assert (run_dir / "model" / "config.json").exists()

    catalog = model_catalog(ws.runs_dir, ws.config.train.base)
    assert catalog["twin"].run_dir == run_dir
    engine = open_engine(catalog["twin"], "transformers")
    assert not hasattr(engine.model, "peft_config"), "a full run is its own model, no adapter"

    result = CliRunner().invoke(
        main,
        ["sample", "--workspace", str(ws.root), "Dear diary,", "-n", "1", "--max-tokens", "3"]
        + ["--engine", "transformers", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout.strip().splitlines()[-1])) == 1


def _fake_run(ws, name: str, finished: bool) -> Path:  # type: ignore[no-untyped-def]
    run = ws.runs_dir / name
    (run / "adapter").mkdir(parents=True)
    (run / "settings.json").write_text("{}")
    if finished:
        (run / "adapter" / "adapter_config.json").write_text("{}")
        (run / "run.json").write_text(json.dumps({"base": "embedded", "dataset": "d"}))
    return run


def test_the_latest_run_is_the_newest_finished_one(tmp_path: Path) -> None:
    from selftune.errors import SelftuneError
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    with pytest.raises(SelftuneError, match="selftune train"):
        ws.artefacts.run()
    done = _fake_run(ws, "20261201-080000", finished=True)
    _fake_run(ws, "20261201-090000", finished=False)  # still training, or killed
    assert ws.artefacts.run().path == done
    assert ws.artefacts.latest("runs", usable_only=False).name == "20261201-090000"
    with pytest.raises(SelftuneError, match="--resume 20261201-090000"):
        ws.artefacts.run("20261201-090000")


def test_bench_results_do_not_hide_the_latest_report(tmp_path: Path) -> None:
    """`selftune bench` makes reports/<id>/ holding only bench.json; `report` still works."""
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    first = ws.artefacts.new_report().commit()
    report = {"id": first.name, "run": "r1", "dataset": "d1", "base_model": "embedded"}
    report |= {"split": "valid", "sections": [], "train": {}, "settings": {}, "timings_s": {}}
    (first / "report.json").write_text(json.dumps(report | {"verdict": "close to you"}))
    bench = ws.artefacts.new_report().commit()
    (bench / "bench.json").write_text(json.dumps({"pass_rate": 1.0, "cases": []}))
    result = CliRunner().invoke(main, ["report", "--workspace", str(ws.root), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["verdict"] == "close to you"


@pytest.mark.parametrize(
    ("command", "section"),
    [("train", "train"), ("build", "build"), ("eval", "eval"), ("sample", "sample")],
)
def test_cli_flags_are_the_config_fields(command: str, section: str) -> None:
    """A flag named after a config field has that field's help text and choices, so the flag,
    twin.yaml's comment and the validation cannot drift apart."""
    import click

    from selftune.config import TwinConfig

    fields = type(getattr(TwinConfig(), section)).model_fields
    hand_written = {"sections"}  # a comma-separated list on the command line
    params = [p for p in main.commands[command].params if p.name in set(fields) - hand_written]
    assert len(params) >= 3
    for param in params:
        info = fields[param.name]
        assert param.help == info.description, param.name
        if isinstance(param.type, click.Choice):
            assert set(param.type.choices) <= set(str(info.annotation).replace("'", '"').split('"'))


def test_aliases_and_flag_values_reach_the_config(tmp_path: Path, monkeypatch) -> None:
    from selftune.training import launch
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Mags"])
    seen = {}
    monkeypatch.setattr(launch, "run_train", None)  # the CLI must call the stage's entry point

    def fake_run_train(ws, dataset=None, preset=None, resume_id=None, overrides=None, echo=None):  # type: ignore[no-untyped-def]
        seen.update(overrides or {})
        raise SystemExit(0)

    import selftune.cli.train_commands as train_commands

    monkeypatch.setattr(train_commands, "run_train", fake_run_train)
    args = ["train", "-w", str(ws.root), "--lr", "1e-4", "--no-packing", "--report-to", "wandb"]
    CliRunner().invoke(main, args + ["--grad-accum", "4"])
    assert seen["learning_rate"] == 1e-4
    assert seen["packing"] is False
    assert seen["report_to"] == ["wandb"]
    assert seen["gradient_accumulation"] == 4
    assert seen["epochs"] is None  # not given: the config's value stays
