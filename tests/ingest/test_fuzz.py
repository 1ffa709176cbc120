"""Property tests: random, damaged and truncated input never crashes a parser, and every
well-formed message that is in the input comes out."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from selftune.errors import SelftuneError
from selftune.ingest import ParseContext, get_parser
from selftune.ingest.whatsapp import HEADER, classify

from .conftest import FIXTURES

SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 25)),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
# what the runner turns into a clear "skipped" line; anything else would be a parser bug
EXPECTED_ERRORS = (SelftuneError, ValueError, OSError)

# (parser, fixture to damage, the file inside it that gets damaged)
TARGETS = [
    ("whatsapp", "whatsapp/WhatsApp Chat with Tobias.txt", ""),
    ("whatsapp", "whatsapp/ios/_chat.txt", ""),
    ("telegram", "telegram/result.json", ""),
    (
        "messenger",
        "messenger/facebook-mags",
        "your_activity_across_facebook/messages/inbox/tobiasmuller_1234567/message_1.json",
    ),
    (
        "instagram",
        "instagram/instagram-mags-2024",
        "your_instagram_activity/messages/inbox/ana_98765/message_1.json",
    ),
    ("email", "email/mags.mbox", ""),
    ("email", "email/single.eml", ""),
    ("discord", "discord/Direct Messages - tobias [123].json", ""),
    ("slack", "slack/acme-export", "general/2024-03-14.json"),
    ("twitter", "twitter/twitter-2024", "data/tweets.js"),
    ("roam", "roam/mags-roam.json", ""),
    ("markdown", "obsidian/vault", "Garden plan.md"),
    ("whatsapp", "whatsapp/languages/de/WhatsApp Chat mit Anke.txt", ""),
    ("whatsapp", "whatsapp/languages/ru/Чат WhatsApp с Olga.txt", ""),
    ("email", "email/languages.mbox", ""),
    ("signal", "signal/signal-export", "TobiasMüller/data.json"),
    ("signal", "signal/signal-export", "ClimbingCrew/chat.md"),
    ("signal", "signal/signalbackup-txt/Tobias Müller (_id3).txt", ""),
]


def damaged_copy(fixture: str, inner: str, mutate) -> tuple[Path, Path]:
    """A temporary copy of a fixture with one file rewritten by `mutate(bytes) -> bytes`."""
    tmp = Path(tempfile.mkdtemp())
    source = FIXTURES / fixture
    target = tmp / source.name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)
    damaged = target / inner if inner else target
    damaged.write_bytes(mutate(damaged.read_bytes()))
    return tmp, target


def run_parser(name: str, path: Path) -> list:
    ctx = ParseContext(me=("Mags",))
    try:
        return list(get_parser(name).parse(path, ctx))
    except EXPECTED_ERRORS:
        return []


@SETTINGS
@given(target=st.sampled_from(TARGETS), cut=st.floats(0, 1))
def test_truncated_input_never_crashes(target, cut):
    name, fixture, inner = target
    tmp, path = damaged_copy(fixture, inner, lambda data: data[: int(len(data) * cut)])
    try:
        run_parser(name, path)
    finally:
        shutil.rmtree(tmp)


@SETTINGS
@given(
    target=st.sampled_from(TARGETS),
    edits=st.lists(
        st.tuples(st.floats(0, 1), st.binary(min_size=0, max_size=8)), min_size=1, max_size=6
    ),
)
def test_corrupted_input_never_crashes(target, edits):
    name, fixture, inner = target

    def mutate(data: bytes) -> bytes:
        for where, junk in edits:
            i = int(len(data) * where)
            data = data[:i] + junk + data[i + len(junk) :]
        return data

    tmp, path = damaged_copy(fixture, inner, mutate)
    try:
        run_parser(name, path)
    finally:
        shutil.rmtree(tmp)


@SETTINGS
@given(name=st.sampled_from(sorted({t[0] for t in TARGETS})), data=st.binary(max_size=2000))
def test_random_bytes_never_crash(name, data):
    suffix = {
        "whatsapp": ".txt",
        "email": ".mbox",
        "twitter": ".js",
        "markdown": ".md",
        "signal": ".txt",
    }.get(name, ".json")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (
            "message_1.json" if name in ("messenger", "instagram") else f"x{suffix}"
        )
        path.write_bytes(data)
        run_parser(name, path)


# -- well-formed messages are never lost ---------------------------------------------------------

AUTHORS = ["Mags", "Tobias Müller", "Ana", "+44 7700 900123"]
LINE = st.text(
    alphabet=st.characters(
        whitelist_categories=("L", "N", "P", "S", "Zs"), blacklist_characters="\u2028\u2029\x85"
    ),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s and s)
WA_MESSAGES = st.lists(
    st.tuples(
        st.sampled_from(AUTHORS),
        st.lists(LINE, min_size=1, max_size=3).map("\n".join),
        st.integers(min_value=0, max_value=60 * 24 * 90),  # minutes after the previous message
    ),
    min_size=1,
    max_size=25,
)
WA_LAYOUTS = [
    ("%d/%m/%Y, %H:%M - ", False),
    ("[%d.%m.%y, %H:%M:%S] ", False),
    ("%m/%d/%y, %I:%M\u202f%p - ", True),
    ("[%m/%d/%y, %I:%M:%S %p] ", True),
    ("%Y-%m-%d, %H:%M - ", False),
    ("%d.%m.%y, %H:%M - ", False),
]


@SETTINGS
@given(messages=WA_MESSAGES, layout=st.sampled_from(WA_LAYOUTS), start_day=st.integers(0, 3000))
def test_whatsapp_keeps_every_well_formed_message(messages, layout, start_day):
    fmt, _ = layout
    when = datetime(2015, 1, 1, 8, 0) + timedelta(days=start_day)
    lines, expected = [], []
    for author, text, gap in messages:
        when += timedelta(minutes=gap)
        assume(not any(HEADER.match(line) for line in text.split("\n")))
        # text that is one of WhatsApp's own placeholders is (rightly) not read as typed text
        assume(classify(author, text)[:2] == ("text", text))
        lines.append(f"{when.strftime(fmt)}{author}: {text}")
        expected.append((when.strftime("%Y-%m-%d %H:%M"), author, text))
    # every order is decidable only once the dates say so; give the file a telling date
    lines.insert(0, f"{datetime(2014, 12, 31, 23, 0).strftime(fmt)}Ana: first")
    expected.insert(0, ("2014-12-31 23:00", "Ana", "first"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "WhatsApp Chat with Fuzz.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        parsed = run_parser("whatsapp", path)
    got = [(m.timestamp.strftime("%Y-%m-%d %H:%M"), m.author, m.text) for m in parsed]
    assert got == expected


def _telegram_export(texts: list[str]) -> tuple[str, list[str]]:
    messages = [
        {
            "id": i,
            "type": "message",
            "date": "2024-01-01T00:00:00",
            "date_unixtime": str(1704067200 + 60 * i),
            "from": "Ana" if i % 2 else "Mags",
            "from_id": f"user{i % 2}",
            "text": text,
            "text_entities": [],
        }
        for i, text in enumerate(texts)
    ]
    chat = {"name": "Ana", "type": "personal_chat", "id": 1, "messages": messages}
    return json.dumps(chat, ensure_ascii=False), [
        json.dumps(m, ensure_ascii=False) for m in messages
    ]


@SETTINGS
@given(texts=st.lists(LINE, min_size=1, max_size=30), cut=st.floats(0, 1))
def test_truncated_json_keeps_every_message_before_the_cut(texts, cut):
    document, pieces = _telegram_export(texts)
    end = int(len(document) * cut)
    complete = [p for p in pieces if document.find(p) + len(p) <= end]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "result.json"
        path.write_text(document[:end], encoding="utf-8")
        parsed = run_parser("telegram", path)
    got = [m.text for m in parsed]
    assert got[: len(complete)] == [json.loads(p)["text"] for p in complete]


# -- bad files through the whole ingest: never a crash, never binary as notes -------------------

BAD_FILES = st.one_of(
    st.binary(max_size=3000),
    st.text(max_size=500).map(lambda t: t.encode("utf-16")),
    st.text(max_size=500).map(lambda t: t.encode("utf-16-be")),
    st.text(max_size=500).map(lambda t: b"\xef\xbb\xbf" + t.encode("utf-8")),
    st.just(b""),
)


@SETTINGS
@given(
    files=st.lists(
        st.tuples(
            st.sampled_from(["a.txt", "b.md", "WhatsApp Chat with X.txt", "c.zip"]), BAD_FILES
        ),
        min_size=1,
        max_size=4,
    )
)
def test_bad_files_never_stop_an_ingest_and_binary_never_becomes_a_note(files):
    from selftune.ingest.importer import ingest_paths
    from selftune.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "exports"
        folder.mkdir()
        for i, (name, data) in enumerate(files):
            (folder / f"{i}-{name}").write_bytes(data)
        good = FIXTURES / "whatsapp" / "WhatsApp Chat with Tobias.txt"
        with Store(Path(tmp) / "store.sqlite") as store:
            ingest_paths(store, [folder, good], ("Mags",))
            notes = [r["text"] for r in store.db.execute("SELECT text FROM notes")]
            texts = [r["text"] for r in store.db.execute("SELECT text FROM messages")]
        assert "Morning! Are you coming tonight?" in texts  # the good path always imports
        assert all("\x00" not in t and t.strip() for t in notes)
