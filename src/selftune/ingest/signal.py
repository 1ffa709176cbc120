"""Signal: what its export tools write (Signal itself has no chat export).

- signal-export (`sigexport DEST`, Signal Desktop): one folder per chat, named after the contact
  or group with only letters and digits kept (`TobiasMüller/`), holding `data.json` (JSON Lines:
  `date`, `sender`, `body`, `quote`, `sticker`, `reactions`, `attachments`), `chat.md`
  (`[2024-03-14 09:12:44] Sender: body`, a blank line after each message) and `media/`. The
  owner's messages have the sender `Me`; times are the exporting computer's local time.
- signalbackup-tools `--exporttxt DIR` (Android backups): one `NAME (_idN).txt` per chat with
  `[Mar 14, 2024 09:12:44] <Sender> body`, `[…] *** <Sender> sent file "x.jpg"` for attachments
  and `[…] *** notice` for status messages; reactions are appended as ` (Name: 👍; Name: ❤)`.
  The owner is `--me`, or in a one-to-one chat the author the file is not named after.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from selftune.ingest.common import decode_text, next_seq, read_capped, read_head
from selftune.ingest.registry import ParseContext, register_parser
from selftune.records import Message, conversation_key

MD_HEADER = re.compile(r"^\[(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\] ([^:\n]{1,80}): ?(.*)$", re.M)
TXT_HEADER = re.compile(
    r"^\[([A-Z][a-z]{2} \d{2}, \d{4} \d{2}:\d{2}:\d{2})\] (?:<([^>\n]{1,80})> |\*\*\* )(.*)$", re.M
)
TXT_FILE = re.compile(r"^<(?P<author>[^>\n]{1,80})> sent file(?: (?P<file>.*))?$")
TXT_TITLE = re.compile(r"^(?P<title>.+?) \(_id\d+\)$")
MD_REACTIONS = re.compile(r"\n\(- (.*) -\)$")
MD_STICKER = re.compile(r"\n\(\( (.*) \)\)$")
MD_ATTACHMENT = re.compile(r"!?\[([^\]]*)\]\(\./(media/[^)]*)\)\s*")
CALLS = ("Incoming call", "Outgoing call")
TOP_LEVEL = ("style.css", "chat.js", "index.html")  # what signal-export writes beside the chats
OWNER = "Me"


def _local(when: datetime) -> datetime:
    return when.astimezone()  # naive times are the exporting computer's local time


class SignalParser:
    name = "signal"
    description = (
        "Signal: signal-export folders (data.json / chat.md per chat) and signalbackup-tools "
        "--exporttxt files"
    )

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            if self._export_file(path) is not None:  # one chat's folder
                return True
            # the export folder: every entry is a chat folder or signal-export's own files, so
            # claiming it never hides another export that sits beside the chats
            entries = [p for p in path.iterdir() if not p.name.startswith(".")][:200]
            chats = [p for p in entries if p.is_dir() and self._export_file(p) is not None]
            others = [p for p in entries if p not in chats and p.name not in TOP_LEVEL]
            if chats and not others:
                return True
            texts = [p for p in entries if p.suffix.lower() == ".txt"]
            return bool(texts) and len(texts) == len(entries) and all(self.detect(t) for t in texts)
        if path.name in ("data.json", "chat.md"):
            return self._export_file(path.parent) == path or self._looks_like(path)
        return path.suffix.lower() == ".txt" and bool(TXT_HEADER.match(read_head(path, 1024)))

    def _export_file(self, folder: Path) -> Path | None:
        """The file signal-export wrote for the chat in `folder` (data.json before chat.md)."""
        for name in ("data.json", "chat.md"):
            if (folder / name).is_file() and self._looks_like(folder / name):
                return folder / name
        return None

    @staticmethod
    def _looks_like(path: Path) -> bool:
        head = read_head(path, 2048)
        if path.name == "chat.md":
            return bool(MD_HEADER.match(head))
        first = head.split("\n", 1)[0]
        return first.startswith("{") and all(f'"{k}"' in first for k in ("date", "sender", "body"))

    def parse(self, path: Path, ctx: ParseContext) -> Iterator[Message]:
        if path.is_file():
            if path.suffix.lower() == ".txt":
                yield from self._txt(path, ctx)
            elif path.name == "data.json":
                yield from self._json(path, path.parent.name, ctx)
            else:
                yield from self._markdown(path, path.parent.name, ctx)
            return
        for text in sorted(path.glob("*.txt")):
            if self.detect(text):
                yield from self._txt(text, ctx)
        folders = [path] + sorted(p for p in path.iterdir() if p.is_dir())
        for folder in folders:
            file = self._export_file(folder)
            if file is not None:
                yield from self.parse(file, ctx)

    # -- signal-export ----------------------------------------------------------------------

    def _json(self, path: Path, title: str, ctx: ParseContext) -> Iterator[Message]:
        text = decode_text(read_capped(path), str(path), ctx)
        rows = []
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                when = _local(datetime.fromisoformat(row["date"]))
                rows.append((number, when, str(row.get("sender") or ""), row))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                ctx.skip(f"{path}:{number}", f"not a signal-export message ({exc})")
        yield from self._messages(rows, title, path, ctx)

    def _markdown(self, path: Path, title: str, ctx: ParseContext) -> Iterator[Message]:
        text = decode_text(read_capped(path), str(path), ctx).replace("\r\n", "\n")
        headers = list(MD_HEADER.finditer(text))
        if not headers and text.strip():
            ctx.skip(str(path), "no line looks like a signal-export message")
        rows = []
        for i, match in enumerate(headers):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            body = text[match.start(3) : end].rstrip("\n")
            row: dict[str, Any] = {"quote": "", "sticker": "", "reactions": [], "attachments": []}
            quote = re.match(r"^\n\n((?:> .*(?:\n|$))+)\n", body)
            if quote:
                row["quote"] = quote.group(1).strip()
                body = body[quote.end() :]
            # to_md appends reactions, then the sticker, then the attachments: undo in reverse
            row["attachments"] = [{"name": a, "path": p} for a, p in MD_ATTACHMENT.findall(body)]
            body = MD_ATTACHMENT.sub("", body)
            sticker = MD_STICKER.search(body)
            if sticker:
                row["sticker"], body = sticker.group(1), body[: sticker.start()]
            reactions = MD_REACTIONS.search(body)
            if reactions:
                row["reactions"] = [r.split(": ", 1) for r in reactions.group(1).split(", ")]
                body = body[: reactions.start()]
            row["body"] = body
            when = _local(datetime.fromisoformat(match.group(1)))
            line = text.count("\n", 0, match.start()) + 1
            rows.append((line, when, match.group(2).strip(), row))
        yield from self._messages(rows, title, path, ctx)

    def _messages(
        self, rows: list[tuple[int, datetime, str, dict]], title: str, path: Path, ctx: ParseContext
    ) -> Iterator[Message]:
        authors = {sender for _, _, sender, _ in rows if sender not in ("", "No-Sender")}
        conversation_id = conversation_key(self.name, title)
        kind_of_chat = "group" if len(authors - {OWNER}) > 1 else "direct"
        if any(sender == OWNER for _, _, sender, _ in rows):
            ctx.owners[conversation_id] = OWNER
        seen: Counter = Counter()
        for number, when, sender, row in rows:
            body = str(row.get("body") or "")
            body = body[:-2] if body.endswith("  ") else body  # signal-export adds two spaces
            extra: dict[str, Any] = {}
            if row.get("quote"):
                extra["quote"] = str(row["quote"]).strip().removeprefix("> ")
            if row.get("reactions"):
                extra["reactions"] = [list(r) for r in row["reactions"]]
            attachments = [a.get("name", "") for a in row.get("attachments") or []]
            if attachments:
                extra["attachments"] = attachments
            if sender in ("", "No-Sender") or body in CALLS:
                kind, author = "system", ""
                body = body or "notice"
            elif body.strip():
                kind, author = "text", sender
            elif attachments or row.get("sticker"):
                kind, author = "media", sender
                body = f"sticker {row['sticker']}".strip() if row.get("sticker") else attachments[0]
            else:
                ctx.skip(f"{path}:{number}", "a message with neither text nor attachment")
                continue
            is_me = None if kind == "system" else sender == OWNER or bool(ctx.is_me(sender))
            yield Message(
                source=self.name,
                conversation_id=conversation_id,
                conversation_title=title,
                conversation_kind=kind_of_chat,
                timestamp=when,
                author=author,
                text=body,
                kind=kind,  # type: ignore[arg-type]
                is_me=is_me,
                origin=f"{path}:{number}",
                extra=extra,
                seq=next_seq(seen, when, author, body),
            )

    # -- signalbackup-tools --exporttxt -----------------------------------------------------

    def _txt(self, path: Path, ctx: ParseContext) -> Iterator[Message]:
        text = decode_text(read_capped(path), str(path), ctx).replace("\r\n", "\n")
        match = TXT_TITLE.match(path.stem)
        title = match.group("title") if match else path.stem
        headers = list(TXT_HEADER.finditer(text))
        if not headers and text.strip():
            ctx.skip(str(path), "no line looks like a signalbackup-tools message")
        parsed = []
        for i, header in enumerate(headers):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            body = text[header.start(3) : end].rstrip("\n")
            line = text.count("\n", 0, header.start()) + 1
            try:
                when = _local(datetime.strptime(header.group(1), "%b %d, %Y %H:%M:%S"))
            except ValueError as exc:
                ctx.skip(f"{path}:{line}", f"unreadable date ({exc})")
                continue
            author, kind, extra = header.group(2) or "", "text", {}
            if not author:  # *** lines: a file someone sent, or a status message
                sent = TXT_FILE.match(body)
                if sent:
                    author, kind = sent["author"], "media"
                    body = (sent["file"] or "file").strip('"')
                else:
                    kind = "system"
            parsed.append((line, when, author, body, kind, extra))
        authors = {p[2] for p in parsed if p[2]}
        # reactions are appended to a body as " (Name: 👍; Name: ❤)", names of the chat's people
        names = "|".join(re.escape(a) for a in sorted(authors, key=len, reverse=True))
        reactions = re.compile(rf" \(((?:(?:{names}): \S+?(?:; )?)+)\)$") if names else None
        owner = next((a for a in authors if ctx.is_me(a)), None)
        if owner is None and len(authors) == 2 and title in authors:
            owner = next(a for a in authors if a != title)
        conversation_id = conversation_key(self.name, title)
        if owner:
            ctx.owners[conversation_id] = owner
        seen: Counter = Counter()
        for line, when, author, body, kind, extra in parsed:
            found = reactions.search(body) if reactions and kind != "system" else None
            if found:
                extra["reactions"] = [r.split(": ", 1) for r in found.group(1).split("; ")]
                body = body[: found.start()]
            yield Message(
                source=self.name,
                conversation_id=conversation_id,
                conversation_title=title,
                conversation_kind="group" if len(authors) > 2 else "direct",
                timestamp=when,
                author=author if kind != "system" else "",
                text=body,
                kind=kind,  # type: ignore[arg-type]
                is_me=None if kind == "system" or owner is None else author == owner,
                origin=f"{path}:{line}",
                extra=extra,
                seq=next_seq(seen, when, author, body),
            )


parser = register_parser(SignalParser())
