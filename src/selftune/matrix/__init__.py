"""Where the owner writes: Matrix, and through its bridges WhatsApp, Telegram and Signal.

`login` keeps the owner's access token in the workspace (`account.py`); `ingest_matrix` reads room
history into the store (`history.py`); `run_bot` drafts replies in allowed rooms and sends the
owner's choice only after the owner answers (`bot.py`: the loop and its Matrix I/O;
`decide.py`: the decisions, without I/O; `drafting.py`: the one call that writes drafts).
Matrix I/O lives in `client.py` alone; `events.py` turns raw events into records.
"""

from selftune.matrix.account import Account, load_account, save_account
from selftune.matrix.history import MatrixImport, ingest_matrix

__all__ = ["Account", "MatrixImport", "ingest_matrix", "load_account", "save_account"]
