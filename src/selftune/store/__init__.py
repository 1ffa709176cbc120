"""The twin's SQLite store, `store.sqlite`, and the only code that runs SQL against it.

- `connection.py`: `Store` (open, pragmas, the migration runner, a newer schema refused);
  `read_foreign` for another program's SQLite file (iMessage's chat.db).
- `migrations.py`: the numbered `@migration` functions; nothing else creates tables.
- `messages.py`, `people.py`: messages, notes, imports; people, identity and exclusions.
- `samples.py`: `SampleLog`, what using the twin produced: samples, picks, ratings, blind answers.
- `memory_index.py`: the memory's FTS5 index and the reads the memory makes of messages.
"""

from selftune.store.connection import Store, read_foreign
from selftune.store.migrations import MIGRATIONS, migration

__all__ = ["MIGRATIONS", "Store", "migration", "read_foreign"]
