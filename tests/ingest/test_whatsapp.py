"""WhatsApp: every layout, date order, clock and quirk in the fixtures, parsed exactly."""

from __future__ import annotations

import zipfile

import pytest

from selftune.ingest.whatsapp import date_order

from .conftest import FIXTURES, parse, wall

WA = FIXTURES / "whatsapp"


def rows(messages):
    return [(wall(m), m.author, m.kind, m.text) for m in messages]


def test_android_day_first_multiline_media_deleted_system():
    messages, ctx = parse(WA / "WhatsApp Chat with Tobias.txt")
    assert rows(messages) == [
        ("2024-04-03 09:12:00", "", "system", messages[0].text),
        ("2024-04-03 09:12:00", "Tobias", "text", "Morning! Are you coming tonight?"),
        ("2024-04-03 09:15:00", "Mags", "text", "Yes\nbringing wine\n\nand cheese: the good one"),
        ("2024-04-03 09:16:00", "Tobias", "media", "<Media omitted>"),
        ("2024-04-05 22:01:00", "Mags", "deleted", "You deleted this message"),
        ("2024-04-05 22:05:00", "Tobias", "deleted", "This message was deleted"),
        ("2024-04-13 08:00:00", "Tobias", "text", "See you at 8: bring the map"),
        ("2024-04-13 08:00:00", "Tobias", "text", "See you at 8: bring the map"),
    ]
    assert messages[0].text.startswith("Messages and calls are end-to-end encrypted")
    assert all(m.timestamp.tzinfo is not None for m in messages)
    # two identical messages in the same minute stay two messages
    assert messages[-1].id != messages[-2].id
    # "You deleted this message" names the owner
    assert [m.is_me for m in messages[1:]] == [False, True, False, True, False, False, False]
    assert set(ctx.owners.values()) == {"Mags"}
    assert messages[1].conversation_title == "Tobias"
    assert messages[1].origin.endswith("WhatsApp Chat with Tobias.txt:2")
    assert not ctx.skipped


def test_us_month_first_12_hour_clock_with_narrow_spaces_and_system_lines():
    messages, _ = parse(WA / "WhatsApp Chat with Book Club.txt", me=("Mags",))
    assert rows(messages) == [
        ("2024-01-14 21:05:00", "", "system", 'Tobias created group "Book Club"'),
        ("2024-01-14 21:05:00", "", "system", "Tobias added you"),
        ("2024-01-14 21:06:00", "Tobias", "text", "Welcome!"),
        ("2024-01-14 00:30:00", "Ana", "text", "Night owls here"),
        ("2024-01-15 12:01:00", "Mags", "text", "Lunch?"),
        (
            "2024-01-15 12:02:00",
            "",
            "system",
            'Ana changed the subject from "Books" to "Book Club: 2024"',
        ),
        ("2024-02-01 07:45:00", "Ana", "media", "image omitted"),
    ]
    assert messages[2].conversation_kind == "group"
    assert [m.is_me for m in messages if m.kind != "system"] == [False, False, True, False]


def test_ios_brackets_dotted_two_digit_years_marks_and_edits():
    messages, _ = parse(WA / "ios" / "_chat.txt")
    assert rows(messages) == [
        ("2024-03-14 09:12:44", "", "system", messages[0].text),
        ("2024-03-14 09:12:50", "Mum", "text", "Morning love\nCall me later?"),
        ("2024-03-14 09:13:02", "Mags", "text", "Will do \u2014 after work \U0001f642"),
        ("2024-03-14 09:14:00", "Mum", "media", "image omitted"),
        (
            "2024-03-15 22:01:13",
            "Mags",
            "media",
            "<attached: 00000012-PHOTO-2024-03-15-22-01-13.jpg>",
        ),
        ("2024-03-15 22:05:00", "Dad", "deleted", "This message was deleted."),
        ("2024-03-16 08:00:00", "", "system", "Mum added Dad"),
        ("2024-03-16 08:01:00", "Dad", "text", "Hi all"),
    ]
    assert messages[-1].extra == {"edited": True}
    # the chat's name comes from the author slot of iOS's first notice
    assert {m.conversation_title for m in messages} == {"Family"}


def test_iso_dates_and_title_from_file_name():
    messages, _ = parse(WA / "WhatsApp Chat - Ana.txt")
    assert rows(messages) == [
        ("2023-12-31 23:59:00", "Ana", "text", "Happy new year almost!"),
        ("2024-01-01 00:00:00", "Mags", "text", "Happy new year \U0001f389"),
    ]
    assert messages[0].conversation_title == "Ana"


def test_ambiguous_dates_are_resolved_from_the_whole_file():
    messages, _ = parse(WA / "WhatsApp Chat with Sam.txt")
    # 01/02 … 04/02 read as days of February (a day apart), not months (a month apart)
    assert [wall(m)[:10] for m in messages] == [
        "2024-02-01",
        "2024-02-02",
        "2024-02-03",
        "2024-02-04",
    ]


@pytest.mark.parametrize(
    ("dates", "twelve_hour", "order"),
    [
        ([(3, 4, 2024), (13, 4, 2024)], False, "dmy"),
        ([(4, 3, 2024), (4, 13, 2024)], False, "mdy"),
        ([(2024, 4, 3)], False, "ymd"),
        ([(23, 5, 12), (23, 5, 13), (23, 5, 14)], False, "ymd"),  # yy-mm-dd
        ([(5, 6, 24)], True, "mdy"),  # undecidable: 12-hour clocks are usually US
        ([(5, 6, 24)], False, "dmy"),
    ],
)
def test_date_order(dates, twelve_hour, order):
    assert date_order(dates, twelve_hour) == order


def test_damaged_lines_are_reported_with_file_and_line_and_the_rest_imports():
    messages, ctx = parse(WA / "WhatsApp Chat with Broken.txt", fmt="whatsapp")
    assert [m.text for m in messages] == ["first", "last"]
    reasons = {s.origin.rsplit(":", 1)[1]: s.reason for s in ctx.skipped}
    assert set(reasons) == {"1", "3"}
    assert "matches no message header" in reasons["1"]
    assert "invalid time" in reasons["3"]


def test_zip_export_gives_the_same_messages_as_the_text(tmp_path):
    source = WA / "WhatsApp Chat with Tobias.txt"
    archive = tmp_path / "WhatsApp Chat - Tobias.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(source, "WhatsApp Chat with Tobias.txt")
        zf.writestr("IMG-20240403-WA0001.jpg", b"\xff\xd8\xff")
    from_zip, _ = parse(archive)
    from_text, _ = parse(source)
    assert [m.id for m in from_zip] == [m.id for m in from_text]


def test_crlf_and_unicode_line_separators_inside_messages(tmp_path):
    path = tmp_path / "WhatsApp Chat with Kim.txt"
    path.write_bytes(
        "12/03/2024, 10:00 - Kim: a\u2028b\r\nsecond line\r\n12/03/2024, 10:01 - Mags: ok\r\n".encode()
    )
    messages, _ = parse(path)
    assert [m.text for m in messages] == ["a\u2028b\nsecond line", "ok"]
