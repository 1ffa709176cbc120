"""The people in the store: who the owner is (identity), aliases merged under one name, and the
contacts excluded from every dataset and from memory (`selftune people`, `memory forget`).

`Store` (connection.py) has these methods; they use its connection, `self.db`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any


class PeopleTables:
    """The queries on `people` and on the authors of `messages`."""

    db: sqlite3.Connection

    def apply_identity(self, me: Iterable[str]) -> None:
        """Mark messages whose author or author id is one of `me` (or in the people table) as mine."""
        names = {m.casefold() for m in me}
        names |= {r[0].casefold() for r in self.db.execute("SELECT name FROM people WHERE is_me=1")}
        # aliases of a name of mine are mine too (`selftune people --merge`)
        aliases = self.db.execute("SELECT name, alias_of FROM people WHERE alias_of IS NOT NULL")
        for name, target in aliases.fetchall():
            if target.casefold() in names:
                names.add(name.casefold())
        if not names:
            return
        marks = ",".join("?" * len(names))
        with self.db:
            self.db.execute(
                # rows already marked are not written again (a first import marks most itself)
                f"UPDATE messages SET is_me = 1 WHERE is_me IS NOT 1 AND kind != 'system' AND ("
                f"lower(author) IN ({marks}) OR lower(coalesce(author_id, '')) IN ({marks}))",
                (*names, *names),
            )
            # in a conversation where the owner is known, everyone else is not the owner
            self.db.execute(
                "UPDATE messages SET is_me = 0 WHERE is_me IS NULL AND kind != 'system' AND "
                "conversation_id IN (SELECT conversation_id FROM messages WHERE is_me = 1)"
            )

    def set_person(
        self,
        name: str,
        *,
        alias_of: str | None = None,
        is_me: bool | None = None,
        excluded: bool | None = None,
    ) -> None:
        """Record what the owner said about a person (the fields given; None leaves one as is)."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO people (name) VALUES (?)", (name,))
            if alias_of is not None:
                self.db.execute(
                    "UPDATE people SET alias_of = ? WHERE name = ?", (alias_of or None, name)
                )
            if is_me is not None:
                self.db.execute("UPDATE people SET is_me = ? WHERE name = ?", (int(is_me), name))
            if excluded is not None:
                self.db.execute(
                    "UPDATE people SET excluded = ? WHERE name = ?", (int(excluded), name)
                )

    def people(self) -> list[dict[str, Any]]:
        """Everyone who wrote a message, with counts, aliases merged under their main name."""
        flags = {r["name"]: dict(r) for r in self.db.execute("SELECT * FROM people")}
        rows = self.db.execute(
            "SELECT author, count(*) AS messages, sum(is_me = 1) AS mine,"
            " count(DISTINCT conversation_id) AS conversations,"
            " group_concat(DISTINCT source) AS sources, min(timestamp) AS first,"
            " max(timestamp) AS last FROM messages WHERE author != '' GROUP BY author"
        ).fetchall()
        people: dict[str, dict[str, Any]] = {}
        for r in rows:
            main = self._main_name(r["author"], flags)
            person = people.setdefault(
                main,
                {
                    "name": main,
                    "aliases": [],
                    "messages": 0,
                    "conversations": 0,
                    "sources": set(),
                    "is_me": bool(flags.get(main, {}).get("is_me")),
                    "excluded": bool(flags.get(main, {}).get("excluded")),
                },
            )
            if r["author"] != main:
                person["aliases"].append(r["author"])
            person["messages"] += r["messages"]
            person["conversations"] += r["conversations"]
            person["sources"] |= set((r["sources"] or "").split(","))
            person["is_me"] = person["is_me"] or bool(r["mine"])
        for person in people.values():
            person["sources"] = sorted(person["sources"])
        return sorted(people.values(), key=lambda p: (-p["messages"], p["name"]))

    @staticmethod
    def _main_name(name: str, flags: dict[str, dict[str, Any]]) -> str:
        seen = {name}
        while flags.get(name, {}).get("alias_of") and flags[name]["alias_of"] not in seen:
            name = flags[name]["alias_of"]
            seen.add(name)
        return name

    def excluded_people(self) -> set[str]:
        """Names (and aliases of names) whose messages must never be trained on."""
        flags = {r["name"]: dict(r) for r in self.db.execute("SELECT * FROM people")}
        excluded = {name for name, f in flags.items() if f["excluded"]}
        return excluded | {name for name in flags if self._main_name(name, flags) in excluded}

    def excluded_keys(self) -> set[str]:
        """Case-folded names, aliases and author ids of everyone excluded: a message is left out
        when its author or author id is one of these (a renamed contact with the same id too)."""
        keys = {n.casefold() for n in self.excluded_people()}
        if not keys:
            return keys
        marks = ",".join("?" * len(keys))
        rows = self.db.execute(
            f"SELECT DISTINCT author, author_id FROM messages WHERE lower(author) IN ({marks})"
            f" OR lower(coalesce(author_id, '')) IN ({marks})",
            (*keys, *keys),
        )
        for author, author_id in rows:
            keys |= {v.casefold() for v in (author, author_id) if v}
        return keys

    def match_person(self, name: str) -> list[str]:
        """Every spelling in the store of the person `name` names, in any letter case: message
        authors, author ids, and names the owner gave in `selftune people`."""
        key = " ".join(name.split()).casefold()
        found = self.db.execute(
            "SELECT author FROM messages WHERE lower(author) = ?"
            " UNION SELECT author_id FROM messages WHERE lower(author_id) = ?"
            " UNION SELECT name FROM people WHERE lower(name) = ?",
            (key, key, key),
        ).fetchall()
        spellings = {r[0] for r in found if r[0]}
        if not spellings:  # lower() in SQLite folds ASCII only
            names = self.db.execute(
                "SELECT author FROM messages UNION SELECT author_id FROM messages"
                " UNION SELECT name FROM people"
            ).fetchall()
            spellings = {r[0] for r in names if r[0] and " ".join(r[0].split()).casefold() == key}
        return sorted(spellings)

    def known_names(self) -> list[str]:
        """Every author and name in the store (for 'did you mean')."""
        rows = self.db.execute(
            "SELECT author FROM messages WHERE author != '' UNION SELECT name FROM people"
        ).fetchall()
        return sorted(r[0] for r in rows)
