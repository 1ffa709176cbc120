"""The bot's decisions and the event rules, without a server: what is drafted for, what an
answer does, what is never sent; bridges, edits and names."""

from __future__ import annotations

from selftune.config import MatrixConfig
from selftune.matrix import decide
from selftune.matrix.events import classify, content_text, room_info, to_message

OWNER = "@me:x"
ROOM = "!room:x"


def _message(event_id: str, sender: str, body: str, msgtype: str = "m.text") -> dict:
    return {
        "type": "m.room.message",
        "event_id": event_id,
        "sender": sender,
        "origin_server_ts": 1_700_000_000_000,
        "content": {"msgtype": msgtype, "body": body},
    }


def _pending_state(config: MatrixConfig) -> decide.BotState:
    state = decide.BotState(approvals_room="!approvals:x")
    decide.on_room_message(state, config, OWNER, ROOM, _message("$a", "@bob:x", "hi"))
    (draft,) = decide.due(state, config, now=1000.0)
    assert draft == decide.Draft(ROOM, "$a")
    decide.drafted(state, decide.Pending(ROOM, "$a", ["one", "two"], 7, 1000.0, "$notice"))
    return state


def test_only_allowed_rooms_and_others_messages_are_drafted_for() -> None:
    config = MatrixConfig(rooms=[ROOM], min_seconds_between_drafts=0)
    state = decide.BotState()
    assert (
        decide.on_room_message(state, config, OWNER, "!other:x", _message("$o", "@b:x", "x")) == []
    )
    assert decide.on_room_message(state, config, OWNER, ROOM, _message("$m", OWNER, "mine")) == []
    assert decide.due(state, config, 0.0) == []
    assert (
        decide.on_room_message(state, config, OWNER, ROOM, _message("$e", "@b:x", "x"), True) == []
    )
    assert decide.due(state, config, 0.0) == []  # an excluded contact: never drafted for
    decide.on_room_message(state, config, OWNER, ROOM, _message("$1", "@b:x", "x"))
    decide.on_room_message(state, config, OWNER, ROOM, _message("$1", "@b:x", "x"))  # replayed
    assert decide.due(state, config, 10.0) == [decide.Draft(ROOM, "$1")]
    assert decide.due(state, config, 11.0) == []


def test_rate_limits_hold_and_the_latest_message_is_drafted_for() -> None:
    config = MatrixConfig(rooms=[ROOM], min_seconds_between_drafts=30, max_drafts_per_hour=2)
    state = decide.BotState()
    decide.on_room_message(state, config, OWNER, ROOM, _message("$1", "@b:x", "a"))
    assert decide.due(state, config, 100.0) == [decide.Draft(ROOM, "$1")]
    decide.on_room_message(state, config, OWNER, ROOM, _message("$2", "@b:x", "b"))
    decide.on_room_message(state, config, OWNER, ROOM, _message("$3", "@b:x", "c"))
    assert decide.due(state, config, 110.0) == []  # too soon for this room
    assert decide.due(state, config, 131.0) == [decide.Draft(ROOM, "$3")]
    decide.on_room_message(state, config, OWNER, ROOM, _message("$4", "@b:x", "d"))
    assert decide.due(state, config, 200.0) == []  # two draft sets this hour already
    assert decide.due(state, config, 3800.0) == [decide.Draft(ROOM, "$4")]


def test_answers_pick_edit_reject_and_nothing_else_sends() -> None:
    config = MatrixConfig(rooms=[ROOM], min_seconds_between_drafts=0)
    for body, expected in [
        ("2", [decide.Send(ROOM, "two", "selftune-$a"), decide.LogPick(7, 1)]),
        (
            "e  my own words ",
            [
                decide.Send(ROOM, "my own words", "selftune-$a"),
                decide.LogPick(7, 0, "my own words"),
            ],
        ),
    ]:
        state = _pending_state(config)
        assert decide.on_answer(state, _message("$ans", OWNER, body), OWNER) == expected
        assert state.pending == {}
    state = _pending_state(config)
    rejected = decide.on_answer(state, _message("$r", OWNER, "r"), OWNER)
    assert decide.LogReject(7) in rejected and not any(isinstance(a, decide.Send) for a in rejected)
    for body, sender, msgtype in [
        ("3", OWNER, "m.text"),  # no draft 3
        ("sure, why not", OWNER, "m.text"),  # not an answer
        ("1", "@bob:x", "m.text"),  # not the owner
        ("1", OWNER, "m.notice"),  # the bot's own notice
    ]:
        state = _pending_state(config)
        actions = decide.on_answer(state, _message("$x", sender, body, msgtype), OWNER)
        assert not any(isinstance(a, decide.Send) for a in actions), body
        assert len(state.pending) == 1
    state = _pending_state(config)
    decide.on_answer(state, _message("$once", OWNER, "1"), OWNER)
    decide.drafted(state, decide.Pending(ROOM, "$b", ["again"], 8, 2000.0))
    assert decide.on_answer(state, _message("$once", OWNER, "1"), OWNER) == []  # replayed event


def test_drafts_expire_and_are_superseded() -> None:
    config = MatrixConfig(rooms=[ROOM], min_seconds_between_drafts=0, expire_minutes=1)
    state = _pending_state(config)
    actions = decide.on_room_message(state, config, OWNER, ROOM, _message("$new", "@bob:x", "?"))
    assert state.pending == {} and "replaced" in actions[0].text
    assert decide.due(state, config, 1001.0) == [decide.Draft(ROOM, "$new")]
    state = _pending_state(config)
    assert "expired" in decide.due(state, config, 1061.0)[0].text and state.pending == {}
    state = _pending_state(config)
    decide.on_room_message(state, config, OWNER, ROOM, _message("$mine", OWNER, "on my way"))
    assert state.pending == {}
    saved = decide.BotState.from_dict(_pending_state(config).to_dict())
    assert saved.pending[ROOM].candidates == ["one", "two"]


def test_bridged_rooms_names_and_message_kinds() -> None:
    state = [
        {
            "type": "m.room.member",
            "state_key": OWNER,
            "content": {"membership": "join", "displayname": "Mags"},
        },
        {
            "type": "m.room.member",
            "state_key": "@telegram_123:x",
            "content": {"membership": "join", "displayname": "Ivan (Telegram)"},
        },
        {
            "type": "m.room.member",
            "state_key": "@telegrambot:x",
            "content": {"membership": "join", "displayname": "Telegram bridge bot"},
        },
    ]
    room = room_info(ROOM, OWNER, state)
    assert room.platform == "telegram" and room.kind == "direct" and room.title == "Ivan"
    assert room.display("@telegram_123:x") == "Ivan"
    message = to_message(_message("$t", "@telegram_123:x", "привет"), room)
    assert message is not None and message.source == "telegram" and message.author == "Ivan"
    assert message.is_me is False and message.timestamp.utcoffset().total_seconds() == 0
    drafted = _message("$d", OWNER, "on my way")
    drafted["content"]["io.selftune.drafted"] = True
    mine = to_message(drafted, room)
    assert mine is not None and mine.is_me and mine.extra["drafted"] is True
    plain = room_info(
        ROOM,
        OWNER,
        state[:1]
        + [{"type": "m.room.member", "state_key": "@bo:x", "content": {"membership": "join"}}],
    )
    assert plain.platform == "matrix" and plain.title == "bo"
    assert content_text({"msgtype": "m.image", "body": "cat.png"}) == ("media", "image: cat.png")
    quoted = {"msgtype": "m.text", "body": "> <@bo:x> earlier\n\nmy answer"}
    assert content_text(quoted) == ("text", "my answer")
    edit = _message("$e", "@bo:x", "* new")
    edit["content"]["m.relates_to"] = {"rel_type": "m.replace", "event_id": "$t"}
    assert classify(edit) == "edit"
    assert classify({"type": "m.room.redaction", "redacts": "$t"}) == "redaction"
    redacted = _message("$gone", "@bo:x", "x")
    redacted["content"] = {}
    assert classify(redacted) == "redacted"
    assert classify({"type": "m.room.encrypted", "content": {}}) == "encrypted"


def test_edits_and_redactions_within_one_read() -> None:
    import asyncio

    from selftune.ingest.importer import ImportSummary
    from selftune.matrix.history import MatrixImport, RoomEvents, to_records

    room = room_info(ROOM, OWNER, [])
    first = _message("$a", "@bo:x", "lunch?")
    edit = _message("$e", "@bo:x", "* lunch at noon?")
    edit["content"]["m.new_content"] = {"msgtype": "m.text", "body": "lunch at noon?"}
    edit["content"]["m.relates_to"] = {"rel_type": "m.replace", "event_id": "$a"}
    forged = _message("$f", "@eve:x", "* eve's words")  # only the sender may edit
    forged["content"]["m.new_content"] = {"msgtype": "m.text", "body": "eve's words"}
    forged["content"]["m.relates_to"] = {"rel_type": "m.replace", "event_id": "$a"}
    gone = _message("$b", "@bo:x", "oops")
    redaction = {"type": "m.room.redaction", "event_id": "$r", "redacts": "$b", "content": {}}
    late_edit = _message("$l", "@bo:x", "* oops!")
    late_edit["content"]["m.new_content"] = {"msgtype": "m.text", "body": "oops!"}
    late_edit["content"]["m.relates_to"] = {"rel_type": "m.replace", "event_id": "$b"}
    out = MatrixImport(ImportSummary("matrix:test", "matrix"))
    events = [first, edit, forged, gone, redaction, late_edit]
    messages, redacted = asyncio.run(to_records(None, [RoomEvents(room, events)], out))
    assert [(m.extra["event_id"], m.text) for m in messages] == [("$a", "lunch at noon?")]
    assert messages[0].extra["edited"] is True and out.events == 6
    assert redacted == {f"matrix:{ROOM}/$b"}
