"""`selftune ingest matrix` against a real Synapse: exactly what the contacts and the owner wrote,
with edits, a redaction, media, a bridged room, and nothing twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from tests.matrix.conftest import logged_in_workspace

from selftune.cli import cli
from selftune.store.memory_index import match_count


@pytest.fixture(scope="module")
def chats(homeserver, make_user):
    owner = make_user("ingest_owner", "Mags")
    alice = make_user("ingest_alice", "Alice Martin")
    bob = make_user("ingest_bob", "Bob")
    puppet = make_user("whatsapp_447700900123", "Carla (WA)")  # a mautrix-whatsapp puppet
    direct = alice.create_room([owner.user_id], direct=True)
    owner.join(direct)
    group = bob.create_room([owner.user_id, alice.user_id], name="Climbing crew")
    owner.join(group)
    alice.join(group)
    bridged = puppet.create_room([owner.user_id], direct=True)
    owner.join(bridged)
    puppet.put_state(
        bridged,
        "m.bridge",
        "whatsapp",
        {"protocol": {"id": "whatsapp", "displayname": "WhatsApp"}, "bridgebot": "@whatsappbot:x"},
    )
    encrypted = alice.create_room([owner.user_id], name="Secret plans")
    owner.join(encrypted)
    alice.put_state(encrypted, "m.room.encryption", "", {"algorithm": "m.megolm.v1.aes-sha2"})
    ciphertext = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn", "session_id": "s"}
    alice.send(encrypted, ciphertext, event_type="m.room.encrypted")
    sent = {
        "hi": alice.say(direct, "hi there"),
        "hey": owner.say(direct, "hey alice"),
        "lunch": alice.say(direct, "lunch tomorrow?"),
        "oops": alice.say(direct, "oops wrong chat"),
        "sat": bob.say(group, "who's in for saturday"),
        "me": alice.say(group, "me!"),
        "count": owner.say(group, "count me in"),
        "photo": bob.send(group, {"msgtype": "m.image", "body": "crag.jpg", "url": "mxc://x/y"}),
        "carla": puppet.say(bridged, "are you coming tonight?"),
        "yes": owner.say(bridged, "yes, at 8"),
    }
    alice.edit(direct, sent["lunch"], "lunch tomorrow at noon?")
    alice.redact(direct, sent["oops"])
    return {
        "owner": owner,
        "alice": alice,
        "bob": bob,
        "puppet": puppet,
        "rooms": {"direct": direct, "group": group, "bridged": bridged},
        "sent": sent,
    }


def _rows(ws):
    with ws.open_store() as store:
        return {m.extra["event_id"]: m for m in store.messages()}


def _times(user, room):
    return {e["event_id"]: e["origin_server_ts"] for e in user.messages(room)}


def test_ingest_reads_rooms_exactly_and_only_once(tmp_path, homeserver, chats):
    ws = logged_in_workspace(tmp_path / "twin", homeserver, chats["owner"], ["Mags"])
    runner = CliRunner()
    first = runner.invoke(cli, ["ingest", "matrix", "-w", str(ws.root)])
    assert first.exit_code == 0, first.output
    assert "Climbing crew" in first.output
    assert "matrix room 'Secret plans': 1 end-to-end encrypted event(s) skipped" in first.output
    rows = _rows(ws)
    sent = chats["sent"]
    assert set(rows) == set(sent.values()) - {sent["oops"]}  # the redacted one is not stored
    assert rows[sent["lunch"]].text == "lunch tomorrow at noon?"  # the edit, not the first text
    assert rows[sent["hi"]].author == "Alice Martin"
    assert rows[sent["hi"]].author_id == chats["alice"].user_id
    assert rows[sent["hi"]].is_me is False and rows[sent["hey"]].is_me is True
    assert rows[sent["count"]].is_me is True and rows[sent["sat"]].author == "Bob"
    assert rows[sent["hi"]].conversation_kind == "direct"
    assert rows[sent["sat"]].conversation_kind == "group"
    assert rows[sent["sat"]].conversation_title == "Climbing crew"
    assert rows[sent["photo"]].kind == "media" and "crag.jpg" in rows[sent["photo"]].text
    # the bridged room: WhatsApp as the source, the puppet's name without the bridge's tag
    assert rows[sent["carla"]].source == "whatsapp"
    assert rows[sent["carla"]].author == "Carla"
    assert rows[sent["yes"]].source == "whatsapp" and rows[sent["yes"]].is_me is True
    assert rows[sent["hi"]].source == "matrix"
    times = {}
    for name, room in chats["rooms"].items():
        times.update(_times(chats["owner"], room))
        del name
    for event_id, message in rows.items():
        assert message.timestamp == datetime.fromtimestamp(times[event_id] / 1000, UTC)

    with ws.open_store() as store:  # the memory's index holds the edited text
        assert match_count(store, '"noon"') == 1
    second = runner.invoke(cli, ["ingest", "matrix", "-w", str(ws.root)])
    assert second.exit_code == 0, second.output
    assert "0 new of 0 messages" in second.output
    assert set(_rows(ws)) == set(rows)

    # what happens between two runs: a new message, an edit and a redaction of older ones
    alice, direct = chats["alice"], chats["rooms"]["direct"]
    later = alice.say(direct, "see you there")
    alice.edit(direct, sent["hi"], "hi there!!")
    alice.redact(direct, sent["lunch"])
    third = runner.invoke(cli, ["ingest", "matrix", "-w", str(ws.root)])
    assert third.exit_code == 0, third.output
    after = _rows(ws)
    assert set(after) == (set(rows) - {sent["lunch"]}) | {later}
    assert after[sent["hi"]].text == "hi there!!"
    assert after[sent["hi"]].timestamp == rows[sent["hi"]].timestamp
    assert "1 redacted message(s) deleted" in third.output
    with ws.open_store() as store:  # the edit replaced the earlier version: one row, not two
        texts = [m.text for m in store.messages() if m.extra["event_id"] == sent["hi"]]
    assert texts == ["hi there!!"]
    with ws.open_store() as store:  # the redacted message left the memory's index too
        assert match_count(store, '"noon"') == 0
        assert match_count(store, '"see"') == 1


def test_login_keeps_the_token_private(tmp_path, homeserver, make_user):
    make_user("login_owner", "Login Owner")
    from selftune.workspace import init_workspace

    ws = init_workspace(tmp_path / "twin", ["Login Owner"])
    result = CliRunner().invoke(
        cli,
        [
            "matrix",
            "login",
            "-w",
            str(ws.root),
            "--homeserver",
            homeserver.url,
            "--user",
            "@login_owner:selftune.test",
            "--password",
            "test-password",
        ],
    )
    assert result.exit_code == 0, result.output
    secret = ws.root / "secrets" / "matrix.json"
    assert secret.stat().st_mode & 0o777 == 0o600
    token = json.loads(secret.read_text())["access_token"]
    assert token and token not in result.output
    assert token not in (ws.root / "twin.yaml").read_text()
    wrong = CliRunner().invoke(
        cli,
        [
            "matrix",
            "login",
            "-w",
            str(ws.root),
            "--homeserver",
            homeserver.url,
            "--user",
            "@login_owner:selftune.test",
            "--password",
            "nope",
        ],
    )
    assert wrong.exit_code == 1 and "refused the login" in wrong.output
    other = make_user("login_other", "Other")
    by_token = CliRunner().invoke(
        cli,
        ["matrix", "login", "-w", str(ws.root), "--homeserver", homeserver.url,
         "--user", other.user_id, "--token", other.token],
    )  # fmt: skip
    assert by_token.exit_code == 0, by_token.output
    assert other.token not in by_token.output
    assert json.loads(secret.read_text())["access_token"] == other.token
    mismatch = CliRunner().invoke(
        cli,
        ["matrix", "login", "-w", str(ws.root), "--homeserver", homeserver.url,
         "--user", "@login_owner:selftune.test", "--token", other.token],
    )  # fmt: skip
    assert mismatch.exit_code == 1 and "belongs to @login_other" in mismatch.output


def test_rooms_lists_the_joined_rooms(tmp_path, homeserver, chats):
    ws = logged_in_workspace(tmp_path / "twin", homeserver, chats["owner"], ["Mags"])
    (ws.root / "twin.yaml").write_text(
        f"me: [Mags]\nmatrix:\n  rooms: ['{chats['rooms']['bridged']}']\n", encoding="utf-8"
    )
    result = CliRunner().invoke(cli, ["matrix", "rooms", "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    rooms = chats["rooms"]
    assert "Climbing crew (Matrix, group, 3 people)" in lines[rooms["group"]]
    assert "Carla (WhatsApp, direct, 2 people)  [bot drafts here]" in lines[rooms["bridged"]]
    assert "Alice Martin (Matrix, direct" in lines[rooms["direct"]]
    assert "encrypted: skipped" in result.output


def test_ingest_rooms_limits_what_is_read(tmp_path, homeserver, chats):
    ws = logged_in_workspace(tmp_path / "twin", homeserver, chats["owner"], ["Mags"])
    group = chats["rooms"]["group"]
    (ws.root / "twin.yaml").write_text(
        f"me: [Mags]\nmatrix:\n  ingest_rooms: ['{group}']\n", encoding="utf-8"
    )
    result = CliRunner().invoke(cli, ["ingest", "matrix", "-w", str(ws.root)])
    assert result.exit_code == 0, result.output
    rooms = {m.extra["room_id"] for m in _rows(ws).values()}
    assert rooms == {group}
