"""Signal, as its export tools write it: signal-export (data.json and chat.md per chat folder) and
signalbackup-tools --exporttxt. Fixtures follow those tools' writers field for field."""

from __future__ import annotations

from selftune.ingest import detect_parser

from .conftest import FIXTURES, parse, wall

SIGNAL = FIXTURES / "signal"


def rows(messages):
    return [(wall(m), m.author, m.kind, m.text, m.is_me) for m in messages]


def test_signal_export_folder_reads_json_where_there_is_json_and_markdown_elsewhere():
    messages, ctx = parse(SIGNAL / "signal-export")
    assert detect_parser(SIGNAL / "signal-export").name == "signal"
    crew = [m for m in messages if m.conversation_title == "ClimbingCrew"]
    tobias = [m for m in messages if m.conversation_title == "TobiasMüller"]
    assert rows(tobias) == [
        ("2024-03-14 09:12:44.123000", "TobiasMüller", "text", "Morning! Coffee later?", False),
        ("2024-03-14 09:13:02", "Me", "text", "Yes\nat the usual place", True),
        (
            "2024-03-14 09:15:00",
            "TobiasMüller",
            "media",
            "2024-03-14T09-15-00.000_00_IMG_0042.jpg",
            False,
        ),
        ("2024-03-14 09:16:00", "Me", "text", "our garden", True),
        ("2024-03-14 09:17:00", "TobiasMüller", "media", "sticker \U0001f602", False),
        ("2024-03-14 20:00:00", "", "system", "Incoming call", None),
    ]
    assert tobias[1].extra["quote"] == "Morning! Coffee later?"
    assert tobias[1].extra["reactions"] == [["TobiasMüller", "\U0001f44d"]]
    assert tobias[3].extra["attachments"] == ["2024-03-14T09-16-00.000_00_garden.jpg"]
    assert rows(crew) == [
        ("2024-03-16 18:00:00", "AnaLima", "text", "Bouldering Saturday?", False),
        ("2024-03-16 18:01:00", "Me", "text", "I'm in", True),
        ("2024-03-16 18:02:00", "TobiasMüller", "text", "Me too", False),
    ]
    assert crew[2].extra["reactions"] == [["AnaLima", "\U0001f389"], ["Me", "\u2764\ufe0f"]]
    assert crew[0].conversation_kind == "group" and tobias[0].conversation_kind == "direct"
    assert not ctx.skipped


def test_the_markdown_and_the_json_of_one_chat_say_the_same():
    from_json, _ = parse(SIGNAL / "signal-export" / "TobiasMüller" / "data.json")
    from_md, _ = parse(SIGNAL / "signal-export" / "TobiasMüller" / "chat.md")
    assert [(m.author, m.kind, m.text, m.extra) for m in from_md] == [
        (m.author, m.kind, m.text, m.extra) for m in from_json
    ]


def test_signalbackup_tools_txt_export():
    messages, ctx = parse(SIGNAL / "signalbackup-txt")
    tobias = [m for m in messages if m.conversation_title == "Tobias Müller"]
    assert rows(tobias) == [
        ("2024-03-14 09:12:44", "Tobias Müller", "text", "Morning! Coffee later?", False),
        ("2024-03-14 09:13:02", "Mags", "text", "Yes\nat the usual place", True),
        ("2024-03-14 09:15:00", "Tobias Müller", "media", "IMG_0042.jpg", False),
        ("2024-03-14 09:16:00", "Mags", "media", "of type image/jpeg", True),
        ("2024-03-14 09:16:00", "Mags", "text", "our garden", True),
        ("2024-03-14 20:00:00", "", "system", "Tobias Müller called you", None),
    ]
    assert tobias[1].extra["reactions"] == [["Tobias Müller", "\U0001f44d"]]
    crew, _ = parse(SIGNAL / "signalbackup-txt" / "Climbing Crew (_id7).txt", me=("Mags",))
    assert [(m.author, m.kind, m.is_me) for m in crew] == [
        ("", "system", None),
        ("Ana Lima", "text", False),
        ("Mags", "text", True),
    ]
    assert set(ctx.owners.values()) == {"Mags"}


def test_a_folder_with_signal_chats_and_other_exports_is_not_claimed_whole(tmp_path):
    import shutil

    from selftune.ingest.importer import ingest_paths
    from selftune.store import Store

    exports = tmp_path / "exports"
    shutil.copytree(SIGNAL / "signal-export" / "TobiasMüller", exports / "TobiasMüller")
    shutil.copy(FIXTURES / "whatsapp" / "WhatsApp Chat with Tobias.txt", exports)
    assert detect_parser(exports) is None  # the walk goes into it instead
    with Store(tmp_path / "store.sqlite") as store:
        ingest_paths(store, [exports], ("Mags",))
        sources = {r[0] for r in store.db.execute("SELECT source FROM messages")}
    assert sources == {"signal", "whatsapp"}
