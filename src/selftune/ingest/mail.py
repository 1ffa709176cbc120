"""Email: mbox files (Gmail Takeout, Thunderbird, Apple Mail) and single `.eml` files or folders.

Bodies come from text/plain, or from HTML converted to text. What is trained on is what the
sender wrote in that email: quoted replies ("On … wrote:", `>` lines, "-----Original Message-----",
Outlook's "From:/Sent:" block, in ten languages), the signature (after `-- `) and the phone's
footer ("Enviado desde mi iPhone") are cut off and kept in `extra` as context. Encoded headers and
quoted-printable/base64 bodies are decoded; threads come from `References`/`In-Reply-To`.
The owner's messages are those sent from one of their addresses (`--me`, twin.yaml), or, failing
that, from the address that is in nearly every message of the mailbox.
"""

from __future__ import annotations

import email
import mailbox
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message as EmailMessage
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any

from selftune.ingest.common import next_seq, read_head
from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Message, conversation_key

# what mail clients write above a quoted reply, in en/fr/de/es/pt/it/nl/ru/tr/id/hi
WROTE = (
    r"wrote|a écrit|schrieb|escribió|escreveu|ha scritto|schreef|пишет|написал\(а\)|написала"
    r"|написал|şunu yazdı|yazdı|menulis|ने लिखा"
)
ATTRIBUTION = re.compile(
    rf"^\s*(?:(?:On|Le|Am|El|Em|Il|Op|Pada)\b.*\b(?:{WROTE})\b.*:|.*\b(?:{WROTE})\s?:"
    r"|-+\s*Original Message\s*-+|-+\s*Forwarded message\s*-+|Begin forwarded message:"
    # "-----Ursprüngliche Nachricht-----", "---------- Mensaje reenviado ---------" and the like
    r"|-{3,}\s*[^-\s][^-]{2,40}?\s*-{3,}|_{20,})\s*$",
    re.I,
)
ATTRIBUTION_START = re.compile(r"^\s*(On|Le|Am|El|Em|Il|Op|Pada)\s.+", re.I)
ATTRIBUTION_END = re.compile(rf"\b(?:{WROTE})\s?:\s*$", re.I)
# Outlook's reply header: "From: … / Sent: … / To: … / Subject: …" in the client's language
OUTLOOK_HEADER = re.compile(r"^\s*\*?(From|Von|De|Da|Van|От|Kimden|Dari|Od)\s?:\*?\s.+", re.I)
OUTLOOK_NEXT = re.compile(
    r"^\s*\*?(Sent|Date|To|Subject|Gesendet|Datum|An|Betreff|Envoyé|À|Objet|Enviado|Enviada"
    r"|Fecha|Para|Asunto|Assunto|Data|Inviato|A|Oggetto|Verzonden|Aan|Onderwerp|Отправлено|Дата"
    r"|Кому|Тема|Gönderildi|Tarih|Kime|Konu|Dikirim|Tanggal|Kepada|Perihal|Subjek)\s?:",
    re.I,
)
# the line a phone or client adds under every message: "Sent from my iPhone", "Enviado desde mi
# iPhone", "Von meinem iPhone gesendet", "Get Outlook for Android", in the same languages
FOOTER = re.compile(
    r"^\s*(?:(?:Sent|Envoyé|Enviado|Enviada|Inviato|Verstuurd|Verzonden|Gesendet|Dikirim"
    r"|Отправлено|Gönderildi)\s+(?:from|with|de|depuis|desde|do|da|dal|vanaf|met|von|mit|dari"
    r"|dengan|с|из|con|avec|com)\s.{1,60}"
    r"|Von meinem .{1,40} gesendet|.{1,40}['’](?:dan|den|tan|ten|umdan|imden|ımdan|ümden) gönderildi"
    r"|मेरे .{1,40} से भेजा गया"
    r"|(?:Get|Obtener|Obtenga|Holen Sie sich|Télécharger|Obtenir|Baixe o|Obtenha o|Ottieni|Scarica"
    r"|Download|Получить|Получите|Edinin|Dapatkan) Outlook .{0,20}(?:iOS|Android).{0,60})\s*$",
    re.I,
)
SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|tr)\s*(\[\d+\])?\s*:\s*)+", re.I)
MSGID = re.compile(r"<[^>]+>")
MBOX_FROM_QUOTE = re.compile(r"^>(>*From )", re.M)


def _header(msg: EmailMessage, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    if "=?" not in str(value):  # no encoded words: nothing to decode (most headers)
        return str(value).strip()
    try:
        return str(make_header(decode_header(str(value)))).strip()
    except (UnicodeError, LookupError, ValueError):
        return str(value).strip()


def _decode(part: EmailMessage) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("utf-8", errors="replace")


def html_to_text(html: str) -> str:
    from inscriptis import get_text

    return get_text(html).strip()


def body_of(msg: EmailMessage) -> tuple[str, list[str]]:
    """(body text, attachment names): text/plain if there is one, else converted HTML."""
    plain, html, attachments = [], [], []
    for part in msg.walk() if msg.is_multipart() else [msg]:
        if part.is_multipart():
            continue
        filename = str(part.get_filename() or "")
        disposition = str(part.get("Content-Disposition") or "").lower()
        if filename or disposition.startswith("attachment"):
            attachments.append(
                str(make_header(decode_header(filename))) if filename else "attachment"
            )
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            plain.append(_decode(part))
        elif ctype == "text/html":
            html.append(_decode(part))
    if plain:
        text = "\n".join(plain)
    elif html:
        text = "\n".join(html_to_text(h) for h in html)
    else:
        text = ""
    return text.replace("\r\n", "\n").replace("\r", "\n"), attachments


def split_reply(body: str) -> tuple[str, str, str]:
    """(what the sender wrote, the signature, the quoted text) of an email body. Quoted replies
    and reply headers, the signature after `-- ` and the client's footer ("Sent from my iPhone"
    in the languages above) are not what the sender wrote."""
    lines = body.split("\n")
    own: list[str] = []
    quoted: list[str] = []
    signature: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.rstrip() in ("-- ", "--") and not signature:
            rest = lines[i + 1 :]
            cut = next(
                (j for j, x in enumerate(rest) if ATTRIBUTION.match(x) or x.startswith(">")), None
            )
            signature = rest[:cut] if cut is not None else rest
            quoted += rest[cut:] if cut is not None else []
            break
        following = next((x for x in lines[i + 1 :] if x.strip()), "")
        if (
            ATTRIBUTION.match(line)
            or (ATTRIBUTION_START.match(line) and ATTRIBUTION_END.search(nxt))
            or (
                line.rstrip().endswith(":")
                and following.startswith(">")
                and not line.startswith(">")
            )
        ):
            quoted += lines[i:]
            break
        if OUTLOOK_HEADER.match(line) and any(OUTLOOK_NEXT.match(x) for x in lines[i + 1 : i + 4]):
            quoted += lines[i:]
            break
        if line.startswith(">"):
            quoted.append(line)
        else:
            own.append(line)
        i += 1
    own, footer = _split_footer(own)
    return "\n".join(own).strip(), "\n".join(footer + signature).strip(), "\n".join(quoted).strip()


def _split_footer(lines: list[str]) -> tuple[list[str], list[str]]:
    """The lines before a client's footer, and the footer (only at the end, only short lines)."""
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    start = end
    while start and (FOOTER.match(lines[start - 1]) or not lines[start - 1].strip()):
        start -= 1
        if end - start > 6:
            return lines, []
    footer = [x for x in lines[start:end] if x.strip()]
    return (lines[:start], footer) if footer else (lines, [])


def _when(msg: EmailMessage) -> datetime | None:
    raw = msg.get("Date")
    if raw:
        try:
            when = parsedate_to_datetime(str(raw))
            return when if when.tzinfo else when.replace(tzinfo=UTC)
        except (TypeError, ValueError, IndexError):
            pass
    from_line = msg.get_from() if isinstance(msg, mailbox.mboxMessage) else None
    if from_line:  # "sender@example.org Thu Mar 14 09:12:44 2024"
        try:
            return datetime.strptime(
                from_line.split(None, 1)[1].strip(), "%a %b %d %H:%M:%S %Y"
            ).replace(tzinfo=UTC)
        except (IndexError, ValueError):
            pass
    return None


def _ids(value: str) -> list[str]:
    return MSGID.findall(value or "")


class MailParser:
    name = "email"
    description = "Email: mbox files and .eml files or folders of them"

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
            return bool(files) and all(p.suffix.lower() == ".eml" for p in files)
        if path.suffix.lower() in (".eml", ".mbox"):
            return True
        head = read_head(path, 2048)
        return head.startswith("From ") and "\nFrom:" in head or head.startswith("Return-Path:")

    def _messages(self, path: Path, ctx: ParseContext) -> Iterator[tuple[str, EmailMessage]]:
        if path.is_dir():
            for file in sorted(path.iterdir()):
                if file.suffix.lower() == ".eml":
                    yield from self._messages(file, ctx)
            return
        with path.open("rb") as fh:
            start = fh.read(5)
        if path.suffix.lower() == ".eml" or start != b"From ":
            with path.open("rb") as fh:
                yield str(path), email.message_from_binary_file(fh)
            return
        box = mailbox.mbox(path, create=False)
        try:
            for i, key in enumerate(box.iterkeys()):
                try:
                    yield f"{path}#message[{i}]", box[key]
                except (ValueError, LookupError, UnicodeError) as exc:
                    ctx.skip(f"{path}#message[{i}]", f"unreadable message ({exc})")
        finally:
            box.close()

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Message]:
        mine = {m.casefold() for m in ctx.me if "@" in m}
        rows: list[dict[str, Any]] = []
        for origin, msg in self._messages(path, ctx):
            try:
                row = self._row(origin, msg)
            except (
                MessageError,
                LookupError,
                UnicodeError,
                ValueError,
                TypeError,
                AttributeError,
            ) as exc:
                ctx.skip(origin, f"unreadable email ({type(exc).__name__}: {exc})")
                continue
            if row is None:
                ctx.skip(origin, "no readable Date header")
                continue
            rows.append(row)
        yield from self._messages_of(rows, mine, ctx)

    @staticmethod
    def _row(origin: str, msg: EmailMessage) -> dict[str, Any] | None:
        """What the parser needs from one email, or None when it has no readable date."""
        when = _when(msg)
        if when is None:
            return None
        name, address = parseaddr(_header(msg, "From"))
        recipients = [
            a.casefold() for _, a in getaddresses([_header(msg, "To"), _header(msg, "Cc")]) if a
        ]
        body, attachments = body_of(msg)
        if isinstance(msg, mailbox.mboxMessage):
            body = MBOX_FROM_QUOTE.sub(r"\1", body)  # mboxrd escapes body lines "From …"
        own, signature, quoted = split_reply(body)
        msgid = (_ids(_header(msg, "Message-ID")) or [None])[0]
        refs = _ids(_header(msg, "References")) or _ids(_header(msg, "In-Reply-To"))
        subject = _header(msg, "Subject")
        extra = {
            "subject": subject,
            "signature": signature,
            "quoted": quoted,
            "attachments": attachments,
            "to": recipients,
            "message_id": msgid,
            "labels": _header(msg, "X-Gmail-Labels"),
        }
        return {
            "origin": origin,
            "when": when,
            "name": name or address,
            "address": address.casefold(),
            "recipients": recipients,
            "own": own,
            "extra": {k: v for k, v in extra.items() if v},
            "msgid": msgid,
            "root": refs[0] if refs else msgid,
            "parent": refs[-1] if refs else None,
            "title": SUBJECT_PREFIX.sub("", subject).strip() or "(no subject)",
        }

    def _messages_of(
        self, rows: list[dict[str, Any]], mine: set[str], ctx: ParseContext
    ) -> Iterator[Message]:
        if not mine:
            mine = self._guess_owner(rows)
        owner_name = None
        by_msgid: dict[str, str] = {}
        messages = []
        seen: Counter = Counter()
        for row in rows:
            is_me = (row["address"] in mine or row["name"].casefold() in mine) if mine else None
            kind = "text" if row["own"] else "media" if row["extra"].get("attachments") else None
            if kind is None:
                ctx.skip(row["origin"], "the email has no text of its own (only quotes or nothing)")
                continue
            root = row["root"] or f"{row['title']}|{row['address']}"
            conversation_id = conversation_key(self.name, root)
            text = row["own"] or ", ".join(row["extra"]["attachments"])
            message = Message(
                source=self.name,
                conversation_id=conversation_id,
                conversation_title=row["title"],
                conversation_kind="email",
                timestamp=row["when"],
                author=row["name"],
                author_id=row["address"] or None,
                text=text,
                kind=kind,  # type: ignore[arg-type]
                is_me=is_me,
                origin=row["origin"],
                extra=row["extra"],
                seq=next_seq(seen, conversation_id, row["when"], row["address"], text),
            )
            if is_me:
                owner_name = row["address"]
                ctx.owners[conversation_id] = owner_name
            if row["msgid"]:
                by_msgid[row["msgid"]] = message.id
            messages.append((message, row["parent"]))
        for message, parent in messages:
            if parent and parent in by_msgid and by_msgid[parent] != message.id:
                message.reply_to = by_msgid[parent]
            yield message

    @staticmethod
    def _guess_owner(rows: list[dict[str, Any]]) -> set[str]:
        """The address on (nearly) every message of a mailbox is its owner's."""
        if len(rows) < 3:
            return set()
        sent = Counter(r["address"] for r in rows if "sent" in r["extra"].get("labels", "").lower())
        if sent:
            return {sent.most_common(1)[0][0]}
        present: Counter = Counter()
        for r in rows:
            present.update({r["address"], *r["recipients"]})
        address, count = present.most_common(1)[0]
        return {address} if count >= 0.8 * len(rows) else set()


parser = register_parser(MailParser())
