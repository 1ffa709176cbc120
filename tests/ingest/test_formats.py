"""Every other format parses its fixtures exactly: counts, authors, timestamps, text, kinds."""

from __future__ import annotations

from selftune.ingest.imessage import attributed_body_text
from selftune.ingest.mail import split_reply
from selftune.ingest.telegram import flatten_text

from .conftest import FIXTURES, parse


def rows(messages):
    return [(m.timestamp.isoformat(), m.author, m.kind, m.text, m.is_me) for m in messages]


def test_telegram_full_export():
    messages, ctx = parse(FIXTURES / "telegram" / "result.json")
    tobias = [m for m in messages if m.conversation_title == "Tobias"]
    assert rows(tobias) == [
        ("2024-03-14T09:12:44+00:00", "Tobias", "text", "Did you see this? ", False),
        (
            "2024-03-14T09:13:00+00:00",
            "Mags Okonkwo",
            "text",
            "Yes! Amazing \u2014 read this and https://example.org/2\nsecond line",
            True,
        ),
        ("2024-03-14T09:14:00+00:00", "Tobias", "media", "sticker \U0001f602", False),
        ("2024-03-14T09:15:00+00:00", "Mags Okonkwo", "text", "our garden this morning", True),
        ("2024-03-14T09:16:30+00:00", "Tobias", "text", "Octopuses have three hearts.", False),
        ("2024-03-14T09:20:00+00:00", "", "system", "Tobias phone call", None),
    ]
    assert tobias[1].reply_to == tobias[0].id
    assert tobias[1].extra["links"] == [{"text": "this", "url": "https://example.org/article"}]
    assert tobias[3].extra["attachment"] == "photo"
    assert tobias[4].extra["forwarded_from"] == "Daily Science"
    assert tobias[0].conversation_kind == "direct"
    group = [m for m in messages if m.conversation_title == "Climbing crew"]
    assert [m.kind for m in group] == ["system", "text", "text"]
    assert group[2].text == "@ana I'm in" and group[2].is_me
    assert group[0].conversation_kind == "group"
    saved = [m for m in messages if m.conversation_title == "Saved Messages"]
    assert [m.text for m in saved] == ["note to self: call the bank"]
    assert len(messages) == 10 and not ctx.skipped
    assert set(ctx.owners.values()) == {"Mags Okonkwo"}


def test_telegram_single_chat_owner_is_who_the_chat_is_not_with():
    messages, _ = parse(FIXTURES / "telegram" / "single_chat.json")
    assert [(m.author, m.is_me) for m in messages] == [("Ana", False), ("Mags", True)]


def test_telegram_text_entities_flatten():
    links = []
    text = ["a ", {"type": "bold", "text": "b"}, {"type": "text_link", "text": "c", "href": "u"}]
    assert flatten_text(text, links) == "a bc"  # the owner typed "c"; the URL is kept aside
    assert links == [{"text": "c", "url": "u"}]
    assert flatten_text("plain") == "plain"
    assert flatten_text(None) == ""


def test_messenger_numbered_files_mojibake_unsent_reactions_shares():
    messages, ctx = parse(FIXTURES / "messenger" / "facebook-mags")
    tobias = [m for m in messages if m.conversation_title == "Tobias M\u00fcller"]
    assert rows(tobias) == [
        (
            "2024-03-14T09:12:44+00:00",
            "Tobias M\u00fcller",
            "text",
            "Hi! Plain ASCII, and a real Latin-1 word: caf\u00e9",
            False,
        ),
        ("2024-03-14T09:12:50+00:00", "Mags Okonkwo", "text", "Line one\nLine two", True),
        (
            "2024-03-14T09:13:00+00:00",
            "Tobias M\u00fcller",
            "text",
            "Tobias M\u00fcller sent a link.\nhttps://example.org/trail",
            False,
        ),
        ("2024-03-14T09:13:20+00:00", "Mags Okonkwo", "deleted", "", True),
        ("2024-03-14T09:14:00+00:00", "Tobias M\u00fcller", "media", "photos", False),
        (
            "2024-03-14T09:15:00+00:00",
            "Mags Okonkwo",
            "text",
            "\u00c7a va? On se voit \u00e0 8h \U0001f60a",
            True,
        ),
    ]
    assert tobias[4].extra["reactions"] == [{"actor": "Mags Okonkwo", "reaction": "\u2764"}]
    group = [m for m in messages if m.conversation_title == "Climbing crew"]
    assert [(m.author, m.kind, m.is_me) for m in group] == [
        ("Mags Okonkwo", "media", True),
        ("Ana Lima", "text", False),
    ]
    assert group[0].conversation_kind == "group"
    assert not ctx.skipped


def test_instagram_is_told_apart_from_messenger():
    messages, _ = parse(FIXTURES / "instagram" / "instagram-mags-2024")
    assert {m.source for m in messages} == {"instagram"}
    assert rows(messages) == [
        (
            "2023-11-14T22:13:10+00:00",
            "ana.lima",
            "text",
            "https://www.instagram.com/p/abc/",
            False,
        ),
        ("2023-11-14T22:13:20+00:00", "", "system", "Reacted \u2764\ufe0f to your message ", None),
        ("2023-11-14T22:14:20+00:00", "mags.o", "text", "obrigada! \U0001f64f", True),
    ]


def test_email_mbox_decoding_quotes_signatures_threads():
    messages, ctx = parse(FIXTURES / "email" / "mags.mbox")
    assert [(m.author, m.author_id, m.is_me) for m in messages] == [
        ("Mags Okonkwo", "mags@example.org", True),
        ("Tobias M\u00fcller", "tobias@example.com", False),
        ("Mags Okonkwo", "mags@example.org", True),
        ("Shop", "newsletter@shop.example", False),
        ("Mags Okonkwo", "mags@example.org", True),
    ]
    first, reply, second, shop, forward = messages
    assert first.text.startswith(
        "Hi Tobias,\n\nShall we meet at the caf\u00e9 at 10? It's a long line"
    )
    assert first.text.endswith("and on and on.\n\nMags")
    assert first.conversation_title == "Caf\u00e9 plans \u2615"
    assert reply.text == "Sounds good \u2014 see you there!"
    assert reply.extra["quoted"].startswith("On Thu, 14 Mar 2024 at 09:12, Mags Okonkwo")
    assert second.text == "Great. I'll bring the map.\nFrom the station it's ten minutes."
    assert second.extra["signature"] == "Mags Okonkwo\nGardener, climber"
    assert first.conversation_id == reply.conversation_id == second.conversation_id
    assert reply.reply_to == first.id and second.reply_to == reply.id
    assert first.timestamp.isoformat() == "2024-03-14T09:12:44+01:00"
    assert shop.text == "Spring sale\n\nEverything 20% off.\n\nUntil Sunday."
    assert forward.text == "Here are the photos from Sunday."
    assert forward.extra["attachments"] == ["garden.jpg"]
    assert forward.extra["quoted"].startswith("-----Original Message-----")
    assert not ctx.skipped


def test_eml_with_latin1_quoted_printable_and_portuguese_attribution():
    messages, _ = parse(FIXTURES / "email" / "single.eml", me=("mags@example.org",))
    assert [(m.text, m.is_me, m.timestamp.isoformat()) for m in messages] == [
        ("Lindas! Obrigada, at\u00e9 logo.", False, "2024-03-17T18:30:00-03:00")
    ]


def test_split_reply_keeps_own_text_only():
    body = "Yes.\n\n> old\n> text\nAnd more.\n-- \nSig\n"
    assert split_reply(body) == ("Yes.\n\nAnd more.", "Sig", "> old\n> text")


def test_discord_dm():
    messages, ctx = parse(FIXTURES / "discord" / "Direct Messages - tobias [123].json")
    assert rows(messages) == [
        ("2024-03-14T09:12:44.123000+00:00", "Tobias", "text", "gm! raid tonight?", False),
        ("2024-03-14T09:13:00+00:00", "Mags", "text", "yes!!\nafter dinner", True),
        ("2024-03-14T09:15:00+00:00", "Tobias", "media", "map.png", False),
        ("2024-03-14T20:00:00+00:00", "", "system", "Started a call that lasted 60 minutes.", None),
    ]
    assert messages[1].reply_to == messages[0].id
    assert ctx.owners and set(ctx.owners.values()) == {"Mags"}


def test_slack_export_folder():
    messages, _ = parse(FIXTURES / "slack" / "acme-export", me=("mags",))
    general = [m for m in messages if m.conversation_title == "#general"]
    assert rows(general) == [
        (
            "2024-03-14T09:11:40.000100+00:00",
            "",
            "system",
            "@Tobias Muller has joined the channel",
            None,
        ),
        (
            "2024-03-14T09:12:44.000200+00:00",
            "Mags",
            "text",
            "Hi @Tobias Muller! The doc is at the wiki (https://example.org/doc) & the code in #general",
            True,
        ),
        ("2024-03-14T09:13:20.000300+00:00", "Tobias Muller", "text", "thanks <3", False),
        ("2024-03-15T09:12:44.000100+00:00", "Tobias Muller", "media", "plan.pdf", False),
        ("2024-03-15T09:13:20.000200+00:00", "Mags", "text", "Multi\nline\n\nmessage", True),
    ]
    assert general[2].reply_to == general[1].id
    dm = [m for m in messages if m.conversation_kind == "direct"]
    assert [(m.conversation_title, m.text) for m in dm] == [
        ("Tobias Muller", "lunch?"),
        ("Tobias Muller", "yes, 12:30"),
    ]


def test_imessage_chat_db_with_attributed_body(chat_db):
    messages, _ = parse(chat_db)
    assert rows(messages) == [
        ("2024-03-14T09:12:44+00:00", "+447700900456", "text", "Morning! Coffee?", False),
        (
            "2024-03-14T09:13:00+00:00",
            "mags@icloud.com",
            "text",
            "Yes! Be there by 10 & not\u00e9",
            True,
        ),
        ("2024-03-14T09:13:20+00:00", "", "system", "+447700900456 loved a message", None),
        ("2024-03-14T09:13:40+00:00", "+447700900456", "media", "attachment", False),
        ("2024-03-14T09:15:00+00:00", "ana@example.net", "text", "Thursday at the wall?", False),
        ("2024-03-14T09:16:00+00:00", "mags@icloud.com", "text", "In!\nBringing chalk.", True),
        ("2024-03-14T09:16:40+00:00", "", "system", "group event 2", None),
        (
            "2024-03-14T09:18:20+00:00",
            "mags@icloud.com",
            "text",
            "A long message stored only in attributedBody: " + "la " * 60 + "end.",
            True,
        ),
    ]
    assert messages[5].reply_to == messages[4].id
    assert (
        messages[4].conversation_title == "Climbing crew"
        and messages[4].conversation_kind == "group"
    )


def test_attributed_body_without_a_string_is_none():
    assert attributed_body_text(b"") is None
    assert attributed_body_text(b"streamtyped NSString") is None


def test_twitter_archive():
    messages, _ = parse(FIXTURES / "twitter" / "twitter-2024")
    assert rows(messages) == [
        (
            "2024-03-14T09:12:44+00:00",
            "@mags_o",
            "text",
            "Tomatoes & basil are in. Diary: https://example.org/garden",
            True,
        ),
        ("2024-03-14T10:00:00+00:00", "@mags_o", "text", "@tobias agreed.\nTwo lines, even.", True),
        (
            "2024-03-15T08:00:00+00:00",
            "@natgeo",
            "text",
            "RT @natgeo: Octopuses have three hearts.",
            False,
        ),
        ("2024-03-14T10:30:00+00:00", "777", "text", "coffee at 10?", False),
        ("2024-03-14T11:00:00+00:00", "@mags_o", "text", "see you there", True),
    ]
    assert messages[1].extra["in_reply_to_screen_name"] == "tobias"


def test_roam_block_tree_refs_todos_tags():
    notes, _ = parse(FIXTURES / "roam" / "mags-roam.json")
    day, tobias, empty = notes
    assert day.title == "March 14th, 2024"
    assert day.text == (
        "- Met [[Tobias]] at the caf\u00e9 #climbing\n"
        "  - TODO buy chalk\n"
        "  - DONE book the wall for #[[Thursday night]]\n"
        "- Idea\n"
        "  - As I said: Friend from climbing; likes maps\n"
        "  - Met [[Tobias]] at the caf\u00e9 #climbing"
    )
    assert [b.text for b in day.blocks] == ["Met [[Tobias]] at the caf\u00e9 #climbing", "Idea"]
    assert day.blocks[1].heading == 2
    assert [c.uid for c in day.blocks[0].children] == ["blk2bbbb", "blk3cccc"]
    assert day.tags == ["climbing", "Thursday night"]
    assert day.links == ["Tobias", "Thursday night"]
    assert day.created.isoformat() == "2024-03-14T09:12:44+00:00"
    assert tobias.blocks[1].text == "Line one\nline two of the same block"
    assert empty.text == "" and empty.blocks == []


def test_obsidian_vault_front_matter_wikilinks_tags_embeds():
    notes, _ = parse(FIXTURES / "obsidian" / "vault")
    assert [n.path for n in notes] == ["Garden plan.md", "daily/2024-03-14.md"]
    plan, daily = notes
    assert plan.tags == ["garden", "spring", "veg"]
    assert plan.links == ["Seeds", "bed-layout.png"]
    assert plan.created is not None and plan.created.date().isoformat() == "2024-03-01"
    assert plan.blocks[0].heading == 1 and plan.blocks[0].text == "Garden plan"
    beds = plan.blocks[0].children[1]
    assert beds.text == "Beds" and [b.text for b in beds.children] == [
        "Bed 1: tomatoes #veg",
        "Bed 2: herbs",
    ]
    assert beds.children[0].children[0].text == "water daily"
    assert daily.links == ["Garden plan"]
    # a folder of the vault gives its notes the same paths (and ids) as the whole vault
    again, _ = parse(FIXTURES / "obsidian" / "vault" / "daily", fmt="markdown")
    assert [n.id for n in again] == [daily.id]


def test_email_footers_and_reply_headers_in_eleven_languages():
    """A Gmail Takeout mbox of replies written on phones set to each language: only the reply's
    own sentence is text; the client footer goes to the signature, the reply header and quote to
    `quoted`."""
    messages, ctx = parse(FIXTURES / "email" / "languages.mbox")
    assert [m.text for m in messages] == [
        "Sí, a las ocho.",
        "Ja, um acht.",
        "Oui, à huit heures.",
        "Sim, às oito.",
        "Sì, alle otto.",
        "Ja, om acht uur.",
        "Да, в восемь.",
        "Evet, sekizde.",
        "Ya, jam delapan.",
        "हाँ, आठ बजे।",
        "Yes, at eight.",
    ]
    assert all(m.extra["signature"] and m.extra["quoted"] for m in messages), [
        (m.extra.get("signature"), m.extra.get("quoted")) for m in messages
    ]
    assert messages[1].extra["quoted"].startswith("________________________________\nVon:")
    assert all(m.is_me for m in messages) and not ctx.skipped


def test_a_sentence_that_looks_like_a_footer_inside_the_text_stays():
    own, signature, _ = split_reply("Sent from my phone is how I write to you.\nBye")
    assert own == "Sent from my phone is how I write to you.\nBye" and signature == ""
