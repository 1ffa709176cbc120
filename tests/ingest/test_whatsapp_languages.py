"""WhatsApp exports written in the phone's language: what WhatsApp wrote is never the owner's text.

Each fixture under fixtures/whatsapp/languages/ is the same chat as an Android phone set to that
language exports it (date layout, file name, WhatsApp's own strings), so one script of expectations
checks them all; an assertion names the language and line that broke.
"""

from __future__ import annotations

import pytest

from selftune.ingest.whatsapp import classify

from .conftest import FIXTURES, parse

LANGUAGES = FIXTURES / "whatsapp" / "languages"
CODES = ["de", "es", "fr", "pt", "it", "nl", "ru", "tr", "hi", "id"]

# (author, kind) per message of every fixture, and the texts the owner typed
SCRIPT = [
    ("", "system"),  # end-to-end encryption notice
    ("Ana", "text"),
    ("Mags", "text"),  # edited: the mark is gone
    ("Ana", "deleted"),
    ("Mags", "deleted"),  # "You deleted this message": names the owner
    ("Ana", "media"),  # media omitted
    ("Mags", "text"),  # media with a caption: the caption is the text
    ("Ana", "media"),  # location
    ("Ana", "media"),  # view once ("null")
    ("Mags", "media"),  # poll
    ("", "system"),  # missed call (shown under Ana: kept in extra)
    ("Ana", "text"),
]


@pytest.mark.parametrize("code", CODES)
def test_localised_system_strings_are_not_text(code):
    (path,) = (LANGUAGES / code).glob("*.txt")
    messages, ctx = parse(path)
    other = messages[1].author  # each language's chat is with someone else
    got = [(m.author.replace(other, "Ana"), m.kind) for m in messages]
    assert got == SCRIPT, f"{code}: {got}"
    assert not ctx.skipped, f"{code}: {ctx.skipped}"
    # the file name says who the chat is with, so the other author is the owner
    assert messages[1].conversation_title == other, code
    assert ctx.owners[messages[1].conversation_id] == "Mags", code
    assert [m.is_me for m in messages if m.kind != "system"] == [
        a == "Mags" for a, k in SCRIPT if k != "system"
    ]
    edited = messages[2]
    assert "<" not in edited.text and edited.text.strip() == edited.text, f"{code}: {edited.text!r}"
    assert edited.extra.get("edited") is True, code
    caption = messages[6]
    assert "<" not in caption.text and "\n" not in caption.text, f"{code}: {caption.text!r}"
    assert caption.extra["attachment"].startswith("<"), code
    assert messages[7].extra["location"].startswith("https://maps.google.com/?q="), code
    poll = messages[9].extra["poll"]
    assert poll["question"] and [o["votes"] for o in poll["options"]] == [1, 0], f"{code}: {poll}"
    # nothing WhatsApp wrote is left in what the owner typed
    typed = [m.text for m in messages if m.is_me and m.kind == "text"]
    assert all("<" not in t and t != "null" for t in typed), f"{code}: {typed}"


def test_the_edited_mark_of_german_exports_keeps_its_full_stop_out_of_the_text():
    messages, _ = parse(LANGUAGES / "de" / "WhatsApp Chat mit Anke.txt")
    assert messages[2].text == "Ja, um acht"


@pytest.mark.parametrize(
    ("body", "kind", "text"),
    [
        # Android "with media" exports: the file, then the caption on the next line
        ("IMG-20240314-WA0001.jpg (Datei angehängt)\nDer Garten", "text", "Der Garten"),
        ("IMG-20240314-WA0001.jpg (file attached)", "media", "IMG-20240314-WA0001.jpg"),
        ("Ana Lima.vcf (archivo adjunto)", "media", "Ana Lima.vcf"),
        ("<Media omitted>\nLook at this", "text", "Look at this"),
        ("<Medien ausgeschlossen> Der Garten", "text", "Der Garten"),
        ("IMG-20240314-WA0001.jpg (file attached) our garden", "text", "our garden"),
        ("<b> is bold in HTML", "text", None),
        # iOS: the caption, then the attachment
        ("Look at this \u200e<attached: 00000012-PHOTO-2024-03-15.jpg>", "text", "Look at this"),
        ("Look at this \u200eimage omitted", "text", "Look at this"),
        ("\u200eimagen omitida", "media", "imagen omitida"),
        ("report.pdf • 3 pages \u200edocument omitted", "media", None),
        # a sentence that mentions deletion or media is still what the owner typed
        ("I think this message was deleted by mistake", "text", None),
        ("the image omitted from the report was mine", "text", None),
        ("<3", "text", None),
    ],
)
def test_media_captions_and_near_misses(body, kind, text):
    got_kind, got_text, extra = classify("Mags", body)
    assert got_kind == kind
    assert got_text == (body if text is None else text)
    if "vcf" in body:
        assert extra["contact_card"] is True


def test_an_ios_poll_with_marked_lines():
    kind, text, extra = classify(
        "Mags",
        "\u200ePOLL:\n\u200eWhen?\n\u200eOPTION: Friday (2 votes)\n\u200eOPTION: Sunday (0 votes)",
    )
    assert (kind, text) == ("media", "When?")
    assert extra["poll"]["options"] == [
        {"option": "Friday", "votes": 2},
        {"option": "Sunday", "votes": 0},
    ]
