"""The `ingest`, `formats` and `people` commands: idempotent, incremental, never crashing."""

from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from selftune.cli import cli
from selftune.store import Store

from .conftest import FIXTURES


def run(*args: str, workspace=None):
    extra = ["--workspace", str(workspace)] if workspace is not None else []
    command, rest = args[0], list(args[1:])
    result = CliRunner().invoke(
        cli, [command, *extra, *rest] if workspace is not None else list(args)
    )
    return result


def make_workspace(tmp_path, *me: str):
    ws = tmp_path / "twin"
    args = ["init", str(ws)]
    for name in me:
        args += ["--me", name]
    assert run(*args).exit_code == 0
    return ws


def count(ws) -> int:
    with Store(ws / "store.sqlite") as store:
        return store.counts()["messages"]


def test_formats_lists_every_parser():
    result = run("formats")
    names = {line.split()[0] for line in result.output.splitlines()}
    assert {
        "whatsapp",
        "telegram",
        "messenger",
        "instagram",
        "email",
        "discord",
        "slack",
        "imessage",
        "twitter",
        "roam",
        "markdown",
    } <= names


def test_ingest_everything_twice_adds_nothing_the_second_time(tmp_path, chat_db):
    ws = make_workspace(tmp_path, "Mags", "Mags Okonkwo")
    first = run("ingest", str(FIXTURES), str(chat_db), workspace=ws)
    assert first.exit_code == 0, first.output
    total = count(ws)
    assert total > 70
    second = run("ingest", str(FIXTURES), str(chat_db), workspace=ws)
    assert second.exit_code == 0
    assert count(ws) == total
    assert " 0 new of " in second.output and "new of" in second.output
    assert all(" 0 new" in line for line in second.output.splitlines() if "new of" in line)


def test_a_newer_export_adds_only_the_new_messages(tmp_path):
    ws = make_workspace(tmp_path, "Mags")
    chat = tmp_path / "old" / "WhatsApp Chat with Tobias.txt"
    chat.parent.mkdir()
    shutil.copy(FIXTURES / "whatsapp" / "WhatsApp Chat with Tobias.txt", chat)
    assert run("ingest", str(chat), workspace=ws).exit_code == 0
    before = count(ws)
    newer = tmp_path / "new" / "WhatsApp Chat with Tobias.txt"
    newer.parent.mkdir()
    newer.write_text(
        chat.read_text()
        + "14/04/2024, 10:00 - Mags: new one\n14/04/2024, 10:01 - Tobias: and another\n"
    )
    result = run("ingest", str(newer), workspace=ws)
    assert "2 new of 10 messages" in result.output
    assert count(ws) == before + 2


def test_bad_input_never_crashes_and_says_where(tmp_path):
    ws = make_workspace(tmp_path, "Mags")
    bad = tmp_path / "bad"
    bad.mkdir()
    telegram = (FIXTURES / "telegram" / "result.json").read_text()
    cut = telegram.index('"id": 105')  # cut inside the chat with Tobias
    (bad / "telegram").mkdir()
    (bad / "telegram" / "result.json").write_text(telegram[:cut])
    (bad / "binary.json").write_bytes(b"\x00\x01\x02garbage\xff" * 100)
    (bad / "notes.dat").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = run("ingest", str(bad), workspace=ws)
    assert result.exit_code == 0, result.output
    assert "result.json:" in result.output and "not valid JSON" in result.output
    assert "unrecognised format; known formats:" in result.output
    # the messages before the damage still imported
    assert count(ws) == 4
    forced = run("ingest", str(bad / "binary.json"), "--format", "telegram", workspace=ws)
    assert forced.exit_code == 0 and "binary" in forced.output


def test_unknown_format_name_lists_the_known_ones(tmp_path):
    ws = make_workspace(tmp_path)
    result = run("ingest", str(FIXTURES / "roam"), "--format", "myspace", workspace=ws)
    assert result.exit_code != 0
    assert "unknown format 'myspace'" in result.output and "whatsapp" in result.output


def test_people_merge_exclude_and_me(tmp_path):
    ws = make_workspace(tmp_path)
    run("ingest", str(FIXTURES / "whatsapp" / "WhatsApp Chat with Book Club.txt"), workspace=ws)
    run("ingest", str(FIXTURES / "telegram" / "result.json"), workspace=ws)
    listed = run("people", "--jsonl", workspace=ws)
    people = {p["name"]: p for p in map(json.loads, listed.output.splitlines())}
    assert people["Ana"]["messages"] == 3 and people["Ana"]["sources"] == ["telegram", "whatsapp"]
    # Book Club does not say who the owner is; the user does
    result = run(
        "people",
        "--me",
        "Mags",
        "--merge",
        "Mags",
        "Mags Okonkwo",
        "--exclude",
        "Tobias",
        workspace=ws,
    )
    assert result.exit_code == 0, result.output
    assert "Mags Okonkwo (also Mags)" in result.output
    with Store(ws / "store.sqlite") as store:
        mine = store.db.execute(
            "SELECT count(*) FROM messages WHERE author = 'Mags' AND is_me = 1"
        ).fetchone()[0]
        assert mine == 1
        assert "Tobias" in store.excluded_people()
    assert (
        "<excluded>"
        in [line for line in result.output.splitlines() if line.endswith("<excluded>")][0]
    )


def test_ingest_reports_who_the_owner_was_per_conversation(tmp_path):
    ws = make_workspace(tmp_path)
    result = run(
        "ingest", str(FIXTURES / "whatsapp" / "WhatsApp Chat with Tobias.txt"), workspace=ws
    )
    assert "Tobias: 8 messages; you are Mags" in result.output


def test_broken_unicode_in_json_is_stored_not_fatal(tmp_path):
    ws = make_workspace(tmp_path, "Mags")
    export = tmp_path / "result.json"
    export.write_text(
        '{"name": "Ana", "type": "personal_chat", "id": 5, "messages": [{"id": 1, "type": "message",'
        ' "date": "2024-01-01T10:00:00", "date_unixtime": "1704103200", "from": "Ana",'
        ' "from_id": "user5", "text": "half an emoji \\ud83d here"}]}'
    )
    result = run("ingest", str(export), workspace=ws)
    assert result.exit_code == 0, result.output
    with Store(ws / "store.sqlite") as store:
        assert [m.text for m in store.messages()] == ["half an emoji \ufffd here"]
