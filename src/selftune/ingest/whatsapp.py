"""WhatsApp "Export chat" files (.txt, or the .zip that holds one), Android and iOS layouts.

Android: `14/03/2024, 09:12 - Name: text`; iOS: `[14/03/2024, 09:12:44] Name: text`. Any date order
and separator (`dd/mm/yyyy`, `m/d/yy`, `dd.mm.yy`, `yyyy-mm-dd`), 12- or 24-hour clocks, with or
without seconds. The date order is decided from the whole file, not line by line: the reading under
which the chat moves forward in time most smoothly wins. Lines without a header continue the message
above, so multi-line messages keep their newlines. What WhatsApp itself writes (deleted, edited,
media, polls, calls, in the phone's language; see `whatsapp_strings`) is never taken for what the
owner typed: `classify` sorts it out, and a caption alone is the text of its media.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

from selftune.errors import SelftuneError
from selftune.ingest import whatsapp_strings as wa
from selftune.ingest.common import decode_text, read_capped, read_zip_member, sniff_encoding
from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Message, conversation_key

INVISIBLE = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\ufeff"
SPACES = " \u202f\u00a0"
BLANK = INVISIBLE + SPACES  # what is stripped around the first line of every message
# [^\S\n]: any space but a newline (the header is matched across the whole text, line by line)
HEADER = re.compile(
    r"^(?P<junk>[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f]*)[\u200e\u200f\ufeff]*\[?(?P<date>\d{1,4}[./-]\d{1,2}[./-]\d{1,4})\.?,?[^\S\n]+"
    r"(?P<time>\d{1,2}[:.]\d{2}(?:[:.]\d{2})?)"
    r"(?:[^\S\n]*(?P<ampm>[AaPp]\.?[^\S\n]?[Mm]\.?))?\]?"
    r"(?:[ \u202f\u00a0]*[-–][ \u202f\u00a0]|[ \u202f\u00a0])(?P<rest>.*)$",
    re.M,
)
DATE_PARTS = re.compile(r"[./-]")
TIME_PARTS = re.compile(r"[:.]")
AUTHOR = re.compile(r"^(?P<author>[^:\n]{1,80}?): (?P<text>.*)$", re.S)
SYSTEM_PHRASES = re.compile(
    r"\b(changed the subject|changed this group|changed the group|created group|created this group"
    r"|added|removed|left|joined using|changed their phone number|changed to|security code"
    r"|turned on disappearing|turned off disappearing|pinned a message|deleted this group)\b"
)
SYSTEM_TEXTS = re.compile(
    r"^(Your security code with|This chat is with a business|Waiting for this message)", re.I
)
MEDIA_END = re.compile(r"\b(image|video|audio|sticker|GIF|document|Contact card) omitted$", re.I)
# iOS: a caption, then U+200E and the placeholder of the attachment it came with
IOS_CAPTIONED = re.compile(rf"\u200e(?:<?(?:{wa.MEDIA_WORDS}) (?:{wa.MEDIA_OMIT_WORDS})>?)$", re.I)
IOS_DOCUMENT = re.compile(r"^\S[^\n]*\.\w{1,5}(?: • [^\n]*)?$")
QUOTE_CHARS = re.compile('["\u201c\u201d\u201e\u201a\u00ab\u00bb\u2039\u203a]')
# the file's name says who the chat is with, in the phone's language (de/es/fr/it/pt/ru as other
# parsers document them; nl/tr/hi/id by the same pattern)
TITLE = re.compile(
    r"^(?:WhatsApp[ -]Chat(?: with | - | – | mit | met | avec |-| )|Chat de WhatsApp con "
    r"|Discussion WhatsApp avec |Conversa (?:do|no) WhatsApp com |Chat WhatsApp (?:con|dengan) "
    r"|Чат WhatsApp с |WhatsApp Sohbeti - |WhatsApp चैट )(?P<title>.+?)(?: के साथ)?"
    r"(?: \(\d+\))?(?:\.txt|\.zip)?$"
    r"|^(?P<title2>.+?) ile WhatsApp Sohbeti(?:\.txt|\.zip)?$",
    re.I,
)
ORDERS = ("dmy", "mdy", "ymd", "ydm")


def _chat_member(zf: zipfile.ZipFile) -> str:
    """The chat inside an export zip: `_chat.txt` (iOS) or a text file named for WhatsApp, else
    the first top-level .txt (a document sent in the chat sits beside it, so it is a last resort)."""
    names = [n for n in zf.namelist() if n.lower().endswith(".txt")]
    if not names:
        raise SelftuneError("the zip holds no chat .txt file")
    named = [n for n in names if n.endswith("_chat.txt") or "whatsapp" in n.lower()]
    top = [n for n in names if "/" not in n.strip("/")]
    return sorted(named or top or names, key=lambda n: (n.count("/"), n))[0]


def _read_text(path: Path, ctx: ParseContext | None = None) -> tuple[str, str]:
    """(text, display name) of the chat; for a .zip, of the chat .txt inside it (streamed, with
    the size cap: a zip bomb is refused, not unpacked)."""
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as zf:
            name = _chat_member(zf)
            display = f"{path}!{name}"
            raw = read_zip_member(zf, name, display)
    else:
        raw, display = read_capped(path), str(path)
    return decode_text(raw, display, ctx), display


def _head(path: Path) -> str:
    """The first 4 KB of the chat as text ('' when it is not text); a zip is not unpacked."""
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as zf:
            name = _chat_member(zf)
            raw = read_zip_member(zf, name, str(path), limit=4000)
    else:
        with path.open("rb") as fh:
            raw = fh.read(4000)
    codec = sniff_encoding(raw)
    if codec is None:
        return ""
    return raw.decode(codec, errors="replace").lstrip("\ufeff")


def _title(path: Path) -> str:
    name = path.name
    if name.lower() == "_chat.txt":
        name = path.parent.name
    match = TITLE.match(name)
    if match:
        return match.group("title") or match.group("title2")
    return Path(name).stem


def _resolve(parts: tuple[int, int, int], order: str) -> date:
    a, b, c = parts
    if order == "ymd":
        year, month, day = a, b, c
    elif order == "ydm":
        year, day, month = a, b, c
    elif order == "dmy":
        day, month, year = a, b, c
    else:
        month, day, year = a, b, c
    return date(year + 2000 if year < 100 else year, month, day)


def date_order(dates: list[tuple[int, int, int]], twelve_hour: bool) -> str:
    """'dmy', 'mdy', 'ymd' or 'ydm' for the distinct dates of a file, in file order.

    An order that makes a date impossible (or in the future) is out, unless every order does. Among the rest, the
    one under which consecutive dates lie closest together wins: a chat moves forward a day at a
    time, while a wrong reading jumps by months or years. Ties (too few dates to tell) go to the
    file's conventions: a four-digit first field is a year, 12-hour clocks are usually US (m/d).
    """
    tomorrow = date.today().toordinal() + 1  # an export holds no messages from the future
    scores = {}
    for order in ORDERS:
        ordinals, invalid = [], 0
        for parts in dates:
            try:
                day = _resolve(parts, order).toordinal()
            except ValueError:
                invalid += 1
                continue
            if day > tomorrow:
                invalid += 1
            else:
                ordinals.append(day)
        jumps = sum(abs(b - a) for a, b in zip(ordinals, ordinals[1:], strict=False))
        scores[order] = (invalid, jumps)
    preferred = ["mdy", "dmy", "ymd", "ydm"] if twelve_hour else ["dmy", "mdy", "ymd", "ydm"]
    return min(preferred, key=lambda order: scores[order])


def _clock(time: str, ampm: str | None) -> tuple[int, int, int]:
    if len(time) == 5 and time[2] in ":.":  # "09:12", most exports: no regex split
        hour, minute, second = int(time[:2]), int(time[3:]), 0
    else:
        parts = TIME_PARTS.split(time)
        hour, minute = int(parts[0]), int(parts[1])
        second = int(parts[2]) if len(parts) > 2 else 0
    if ampm:
        hour = hour % 12 + (12 if ampm[0] in "pP" else 0)
    return hour, minute, second


def _local_zone(zones: dict, day: date, hour: int):  # type: ignore[no-untyped-def]
    """The local UTC offset on `day` at `hour`: one look-up per day, per hour on DST days."""
    first = datetime(day.year, day.month, day.day, 0).astimezone().tzinfo
    last = datetime(day.year, day.month, day.day, 23).astimezone().tzinfo
    if first == last:
        zones[day] = first
        return first
    zone = zones[day, hour] = datetime(day.year, day.month, day.day, hour).astimezone().tzinfo
    return zone


def _split_author(rest: str, verdicts: dict[str, str | None] | None = None) -> tuple[str, str]:
    """(author, text); author is '' for a system line. `verdicts` caches what each distinct
    author slot turned out to be (a chat has few authors and many messages)."""
    match = AUTHOR.match(rest)
    if not match:
        return "", rest
    slot = match.group("author")
    author = verdicts.get(slot, False) if verdicts is not None else False
    if author is False:
        # "Ana hat den Betreff zu „Plan: Freitag“ geändert" quotes something: not a writer
        author = (
            None
            if SYSTEM_PHRASES.search(slot) or QUOTE_CHARS.search(slot)
            else slot.strip(INVISIBLE + SPACES + "~")
        )
        if verdicts is not None:
            verdicts[slot] = author
    return (author, match.group("text")) if author is not None else ("", rest)


def classify(author: str, text: str) -> tuple[str, str, dict]:
    """(kind, what the author typed, extra) of a message body, in any of the export languages:
    WhatsApp's own placeholders are media/deleted/system, a caption is the text of its media."""
    first, _, rest = text.partition("\n")
    bare = first.strip(BLANK)
    if not author:
        return "system", text, {}
    if bare[:8] in wa.NOTICE_PREFIXES and (
        SYSTEM_TEXTS.match(bare) or wa.ENCRYPTION_NOTICE.match(bare)
    ):
        return "system", text, {}
    # cheap tests first: most messages are plain text and reach the end
    if len(bare) < 80:
        exact = bare if not rest else ""
        if exact in wa.DELETED_OTHER_SET:
            return "deleted", text, {}
        if exact in wa.DELETED_ME_SET:
            return "deleted", text, {"deleted_by_me": True}
        if exact in wa.NOTICE_SET or bare.endswith(("is a contact", "is a contact.")):
            return "system", text, {}
        if exact == wa.VIEW_ONCE:
            return "media", bare, {"view_once": True}
        last = bare[-1:]
        placeholder = (
            (
                bare[:1] == "<"
                and (bare in wa.MEDIA_SET or (" " in bare and wa.ANY_PLACEHOLDER.match(bare)))
            )
            or (last in wa.OMIT_LAST and wa.MEDIA_NAMED.match(bare) is not None)
            or (bare.endswith(("omitted", "OMITTED")) and MEDIA_END.fullmatch(bare) is not None)
        )
        if placeholder:  # Android: "<Media omitted>" then the caption on the next lines
            return _with_caption(rest, {"attachment": bare})
        if bare[:1] == "<" and "> " in bare:  # "<Media omitted> the caption" on one line
            head, _, caption = bare.partition("> ")
            if head + ">" in wa.MEDIA_SET:
                return _with_caption(
                    caption + ("\n" + rest if rest else ""), {"attachment": head + ">"}
                )
        attached = wa.ATTACHED_FILE.match(bare) if ") " in bare or last == ")" else None
        if attached:
            extra = {"attachment": attached["file"]}
            if attached["file"].lower().endswith(".vcf"):
                extra["contact_card"] = True
            caption = attached["caption"] or ""
            return _with_caption(caption + ("\n" + rest if rest else ""), extra)
        location = wa.LOCATION.match(bare) if not rest and "maps.google" in bare else None
        if location:
            return "media", text, {"location": location["url"]}
        if rest and last == ":" and wa.POLL_HEAD.match(bare):
            return _poll(rest, text)
    if text.endswith(">") and "<attached: " in text:
        ios = wa.IOS_ATTACHED.match(text.strip(INVISIBLE + SPACES))
        if ios:
            return _with_caption(ios["caption"], {"attachment": ios["file"]})
    if "\u200e" in text:
        captioned = IOS_CAPTIONED.search(text)
        caption = text[: captioned.start()].strip(INVISIBLE + SPACES) if captioned else ""
        if captioned and caption:
            placeholder = captioned.group(0).strip(INVISIBLE)
            if IOS_DOCUMENT.match(caption):  # "report.pdf • 3 pages ‎document omitted"
                return "media", text.strip(INVISIBLE + SPACES), {"attachment": caption}
            return "text", caption, {"attachment": placeholder}
        if first.startswith("\u200e"):
            return "system", text, {}  # iOS marks its own notices ("‎Alice added Bob")
    return "text", text, {}


def _with_caption(caption: str, extra: dict) -> tuple[str, str, dict]:
    caption = caption.strip(INVISIBLE + SPACES + "\n")
    if caption:
        return "text", caption, extra
    return "media", extra.get("attachment", ""), extra


def _poll(rest: str, text: str) -> tuple[str, str, dict]:
    question, options = [], []
    for line in rest.split("\n"):
        line = line.strip(INVISIBLE + SPACES)  # iOS marks each line with U+200E
        option = wa.POLL_LINE.match(line)
        if option:
            votes = option["votes"]
            options.append({"option": option["option"], "votes": int(votes) if votes else None})
        elif not options:
            question.append(line)
    poll = {"question": "\n".join(question).strip(), "options": options}
    return "media", poll["question"] or text, {"poll": poll}


class WhatsAppParser:
    name = "whatsapp"
    description = "WhatsApp 'Export chat' .txt or .zip (Android and iOS, any date/clock format)"

    def detect(self, path: Path) -> bool:
        if not path.is_file() or path.suffix.lower() not in (".txt", ".zip"):
            return False
        try:
            if path.suffix.lower() == ".zip":
                with zipfile.ZipFile(path) as zf:
                    member = _chat_member(zf)
                if member.endswith("_chat.txt") or TITLE.match(Path(member).name):
                    return True  # WhatsApp's own names: parse says what is wrong, if anything
            head = _head(path)
        except (zipfile.BadZipFile, SelftuneError, RuntimeError, NotImplementedError, OSError):
            return False
        lines = [line for line in head.splitlines()[:20] if line.strip()]
        hits = sum(bool(HEADER.match(line)) for line in lines)
        return bool(lines) and hits >= max(1, (len(lines) + 1) // 2)

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Message]:
        text, display = _read_text(path, ctx)
        # newlines only: U+2028 and friends may be inside a message
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        raws = []  # [line number, date, time, ampm, text]
        line, last = 1, 0
        previous = None
        for match in HEADER.finditer(text):
            start = match.start()
            if previous is None:
                for offset, junk in enumerate(text[:start].split("\n")):
                    if junk.strip(INVISIBLE + " "):
                        ctx.skip(f"{display}:{offset + 1}", "line matches no message header")
            else:
                # the header's own line, and every line up to the next header, is the message
                previous[4] = text[previous[4] : start - 1]
            line += text.count("\n", last, start)
            last = start
            junk, day, time, ampm = match.group("junk", "date", "time", "ampm")
            if junk:
                ctx.skip(
                    f"{display}:{line}",
                    f"{len(junk)} unreadable character(s) before the message header "
                    "were dropped; the message was kept",
                )
            previous = [line, day, time, ampm, match.start("rest")]
            raws.append(previous)
        if previous is None:
            if text.strip():
                ctx.skip(display, "no line looks like a WhatsApp message header")
            return
        # a file ends with a newline; that last empty line is not part of the last message
        previous[4] = text[previous[4] :].rstrip("\n")

        dates = {key: tuple(map(int, DATE_PARTS.split(key))) for key in {raw[1] for raw in raws}}
        dates = {raw[1]: dates[raw[1]] for raw in raws}  # in file order, for date_order
        order = date_order(list(dates.values()), any(raw[3] for raw in raws))
        days: dict[str, date | None] = {}
        for key, parts in dates.items():
            try:
                days[key] = _resolve(parts, order)  # type: ignore[arg-type]
            except ValueError:
                days[key] = None

        title = _title(path)
        parsed = []
        zones: dict = {}
        verdicts: dict[str, str | None] = {}
        whens: dict[tuple[str, str, str | None], datetime] = {}
        for number, day, time, ampm, body in raws:
            when = whens.get((day, time, ampm))  # chats come in bursts: many share a minute
            if when is None:
                when_day = days[day]
                if when_day is None:
                    ctx.skip(f"{display}:{number}", f"impossible date {day!r} (read as {order})")
                    continue
                try:
                    hour, minute, second = _clock(time, ampm)
                    # naive export times are the phone's local time: the offset (DST included)
                    # is looked up once per day of the chat, per hour on the days clocks change
                    zone = zones.get(when_day) or zones.get((when_day, hour))
                    if zone is None:
                        zone = _local_zone(zones, when_day, hour)
                    when = datetime(
                        when_day.year, when_day.month, when_day.day, hour, minute, second, 0, zone
                    )
                except ValueError as exc:
                    ctx.skip(f"{display}:{number}", f"invalid time {time!r} ({exc})")
                    continue
                whens[day, time, ampm] = when
            author, body = _split_author(body, verdicts)
            edited = False
            if author and ">" in body[-60:]:
                mark = wa.EDITED_MARK.search(body)
                if mark:
                    body, edited = body[: mark.start()], True
            kind, body, extra = classify(author, body)
            if edited:
                extra["edited"] = True
            parsed.append((number, when, author, body, kind, extra))

        # iOS names the chat in the author slot of its first notice
        notice = next((p for p in parsed[:3] if p[4] == "system" and p[2]), None)
        if notice and not TITLE.match(path.name):
            title = notice[2]
        conversation_id = conversation_key(self.name, title)
        authors = Counter(p[2] for p in parsed if p[2] and p[4] != "system")
        owner = self._owner(parsed, authors, title, ctx)
        if owner:
            ctx.owners[conversation_id] = owner
        conversation_kind = "group" if len(authors) > 2 else "direct"
        seen: dict[tuple, int] = {}
        for number, when, author, body, kind, extra in parsed:
            if kind == "system" and author:
                extra["shown_as"] = author
                author = ""
            body = body.strip(INVISIBLE) if kind != "text" else body.lstrip(INVISIBLE)
            key = (when, author, body)
            n = seen.get(key, 0)
            seen[key] = n + 1
            yield Message(
                source=self.name,
                conversation_id=conversation_id,
                conversation_title=title,
                conversation_kind=conversation_kind,
                timestamp=when,
                author=author,
                text=body,
                kind=kind,  # type: ignore[arg-type]
                is_me=None if kind == "system" or owner is None else author == owner,
                origin=f"{display}:{number}",
                extra=extra,
                seq=n,
            )

    @staticmethod
    def _owner(parsed: list, authors: Counter, title: str, ctx: ParseContext) -> str | None:
        """Who the owner is: a configured name, the author of 'You deleted this message' (in any
        export language), or the one author of a direct chat who is not the person the chat is
        named after."""
        for name in authors:
            if ctx.is_me(name):
                return name
        for _, _, author, _, kind, extra in parsed:
            if kind == "deleted" and extra.get("deleted_by_me"):
                return author
        if len(authors) == 2 and title in authors:
            return next(a for a in authors if a != title)
        return None


parser = register_parser(WhatsAppParser())
