"""WhatsApp "Export chat" files (.txt, or the .zip that holds one), Android and iOS layouts.

Android: `14/03/2024, 09:12 - Name: text`; iOS: `[14/03/2024, 09:12:44] Name: text`. Date order
(day/month or month/day) is decided from the whole file, not line by line. Lines without a header
continue the message above.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Message, conversation_key

INVISIBLE = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\ufeff"
HEADER = re.compile(
    r"^[\u200e\u200f\ufeff]*\[?(?P<date>\d{1,4}[./-]\d{1,2}[./-]\d{1,4})[,.]?\s+"
    r"(?P<time>\d{1,2}[:.]\d{2}(?:[:.]\d{2})?)"
    r"(?:[\s\u202f\u00a0]*(?P<ampm>[AaPp]\.?\s?[Mm]\.?))?\]?"
    r"(?:\s*[-–]\s|\s)(?P<rest>.*)$"
)
AUTHOR = re.compile(r"^(?P<author>[^:\n]{1,80}?): (?P<text>.*)$", re.S)
SYSTEM_PHRASES = re.compile(
    r"\b(changed the subject|changed this group|changed the group|created group|created this group"
    r"|added|removed|left|joined using|changed their phone number|changed to|security code"
    r"|turned on disappearing|turned off disappearing|pinned a message|deleted this group)\b"
)
SYSTEM_TEXTS = re.compile(
    r"^(Messages and calls are end-to-end encrypted|Messages to this group are now secured"
    r"|Missed (voice|video) call|Your security code with|This chat is with a business"
    r"|.* is a contact\.?$|Waiting for this message)",
    re.I,
)
MEDIA = re.compile(
    r"^(<Media omitted>|<Médias omis>|<Medien ausgeschlossen>|<Multimedia omitido>"
    r"|(image|video|audio|sticker|GIF|document|Contact card) omitted"
    r"|<attached: [^>]+>|.+ \(file attached\)|null)$",
    re.I,
)
DELETED = re.compile(r"^(This message was deleted\.?|You deleted this message\.?)$", re.I)
EDITED = "<This message was edited>"
TITLE = re.compile(r"^WhatsApp Chat (?:with |- |– )?(?P<title>.+?)(?:\.txt|\.zip)?$", re.I)


@dataclass
class _Raw:
    line: int
    date: tuple[int, int, int]
    time: str
    ampm: str | None
    rest: str


def _read_text(path: Path) -> tuple[str, str]:
    """(text, display name) of the chat; for a .zip, of the chat .txt inside it."""
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.lower().endswith(".txt")]
            if not names:
                raise ValueError("the zip holds no chat .txt file")
            name = "_chat.txt" if "_chat.txt" in names else names[0]
            return zf.read(name).decode("utf-8-sig", errors="replace"), f"{path}!{name}"
    return path.read_text(encoding="utf-8-sig", errors="replace"), str(path)


def _title(path: Path) -> str:
    stem = path.name if path.suffix.lower() in (".txt", ".zip") else path.name
    if stem.lower() == "_chat.txt":
        stem = path.parent.name
    match = TITLE.match(stem)
    return match.group("title") if match else path.stem


def _date_order(dates: list[tuple[int, int, int]], twelve_hour: bool) -> str:
    """'ymd', 'dmy' or 'mdy', decided from all dates of the file."""
    if dates and dates[0][0] > 31:
        return "ymd"
    if any(a > 12 for a, _, _ in dates):
        return "dmy"
    if any(b > 12 for _, b, _ in dates):
        return "mdy"

    def inversions(order: str) -> int:
        keys = [(y, b, a) if order == "dmy" else (y, a, b) for a, b, y in dates]
        return sum(1 for k1, k2 in zip(keys, keys[1:], strict=False) if k2 < k1)

    dmy, mdy = inversions("dmy"), inversions("mdy")
    if dmy != mdy:
        return "dmy" if dmy < mdy else "mdy"
    return "mdy" if twelve_hour else "dmy"


def _timestamp(raw: _Raw, order: str) -> datetime:
    a, b, c = raw.date
    if order == "ymd":
        year, month, day = a, b, c
    elif order == "dmy":
        day, month, year = a, b, c
    else:
        month, day, year = a, b, c
    if year < 100:
        year += 2000
    parts = [int(p) for p in re.split(r"[:.]", raw.time)]
    hour, minute, second = parts[0], parts[1], parts[2] if len(parts) > 2 else 0
    if raw.ampm:
        pm = raw.ampm.lower().startswith("p")
        if hour == 12:
            hour = 0
        if pm:
            hour += 12
    return datetime(year, month, day, hour, minute, second).astimezone()


def _split_author(rest: str) -> tuple[str, str]:
    """(author, text); author is '' for a system line."""
    match = AUTHOR.match(rest)
    if match and not SYSTEM_PHRASES.search(match.group("author")):
        return match.group("author").strip(INVISIBLE + " ~\u202f\u00a0"), match.group("text")
    return "", rest


def _kind(author: str, text: str) -> str:
    bare = text.strip(INVISIBLE + " ")
    if not author or SYSTEM_TEXTS.match(bare):
        return "system"
    if DELETED.match(bare):
        return "deleted"
    if MEDIA.match(bare):
        return "media"
    return "text"


class WhatsAppParser:
    name = "whatsapp"
    description = "WhatsApp 'Export chat' .txt or .zip (Android and iOS, any date/clock format)"

    def detect(self, path: Path) -> bool:
        if not path.is_file() or path.suffix.lower() not in (".txt", ".zip"):
            return False
        if path.suffix.lower() == ".zip":
            try:
                text, _ = _read_text(path)
            except (zipfile.BadZipFile, ValueError):
                return False
            head = text[:4000]
        else:
            with path.open(encoding="utf-8-sig", errors="replace") as fh:
                head = fh.read(4000)
        lines = [line for line in head.splitlines()[:20] if line.strip()]
        return bool(lines) and sum(bool(HEADER.match(line)) for line in lines) >= max(1, len(lines) // 2)

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Message]:
        text, display = _read_text(path)
        raws: list[_Raw] = []
        for number, line in enumerate(text.splitlines(), start=1):
            match = HEADER.match(line)
            if match:
                date = tuple(int(x) for x in re.split(r"[./-]", match.group("date")))
                raws.append(_Raw(number, date, match["time"], match["ampm"], match["rest"]))  # type: ignore[arg-type]
            elif raws:
                raws[-1].rest += "\n" + line
            elif line.strip():
                ctx.skip(f"{display}:{number}", "line matches no message header and precedes all messages")
        if not raws:
            return
        order = _date_order([r.date for r in raws], any(r.ampm for r in raws))
        title = _title(path)
        conversation_id = conversation_key(self.name, title)
        parsed = []
        for raw in raws:
            try:
                when = _timestamp(raw, order)
            except ValueError as exc:
                ctx.skip(f"{display}:{raw.line}", f"invalid date or time ({exc})")
                continue
            author, body = _split_author(raw.rest)
            parsed.append((raw.line, when, author, body))

        authors = Counter(a for _, _, a, body in parsed if a and _kind(a, body) != "system")
        owner = self._owner(parsed, authors, title, ctx)
        if owner:
            ctx.owners[conversation_id] = owner
        conversation_kind = "group" if len(authors) > 2 else "direct"
        seen: Counter[tuple[datetime, str, str]] = Counter()
        for line, when, author, body in parsed:
            kind = _kind(author, body)
            extra = {}
            if EDITED in body:
                body = body.replace(EDITED, "").rstrip()
                extra["edited"] = True
            if kind == "system" and author in (title, ""):
                author = ""
            body = body.strip(INVISIBLE) if kind != "text" else body.lstrip(INVISIBLE)
            key = (when, author, body)
            seen[key] += 1
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
                origin=f"{display}:{line}",
                extra=extra,
                seq=seen[key] - 1,
            )

    @staticmethod
    def _owner(parsed: list, authors: Counter, title: str, ctx: ParseContext) -> str | None:
        """Who the owner is: a configured name, the author of 'You deleted this message', or the
        one author of a direct chat who is not the person the chat is named after."""
        for name in authors:
            if ctx.is_me(name):
                return name
        for _, _, author, body in parsed:
            if author and body.strip(INVISIBLE + " ").lower().startswith("you deleted this message"):
                return author
        if len(authors) == 2 and title in authors:
            return next(a for a in authors if a != title)
        return None


parser = register_parser(WhatsAppParser())
