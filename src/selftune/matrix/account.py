"""The owner's Matrix login, kept in the workspace at `secrets/matrix.json` (folder 0700, file
0600): homeserver, user id, device and access token. Never in twin.yaml, never printed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from selftune.errors import SelftuneError
from selftune.workspace import PRIVATE_DIR, write_private

SECRETS_DIR = "secrets"
ACCOUNT_FILE = "matrix.json"


@dataclass
class Account:
    homeserver: str  # client-server API base, e.g. https://matrix.example.org
    user_id: str  # @me:example.org
    access_token: str
    device_id: str | None = None

    def __repr__(self) -> str:  # the token never reaches a log or a traceback
        return f"Account({self.user_id!r} on {self.homeserver!r}, device {self.device_id!r})"

    @property
    def server_name(self) -> str:
        return self.user_id.partition(":")[2]


def account_path(root: Path) -> Path:
    return root / SECRETS_DIR / ACCOUNT_FILE


def save_account(root: Path, account: Account) -> Path:
    """Write the login where only the owner can read it; returns the file's path."""
    folder = root / SECRETS_DIR
    folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    folder.chmod(PRIVATE_DIR)
    path = account_path(root)
    write_private(path, json.dumps(asdict(account), indent=1) + "\n")
    return path


def load_account(root: Path) -> Account:
    path = account_path(root)
    if not path.exists():
        raise SelftuneError(
            f"no Matrix login in {root} ({path} is missing); run `selftune matrix login "
            "--homeserver URL --user @you:server` first"
        )
    if path.stat().st_mode & 0o077:
        raise SelftuneError(
            f"{path} can be read by other users; it holds your Matrix access token. Run "
            f"`chmod 600 {path}` (and consider logging in again for a new token)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Account(**data)
    except (ValueError, TypeError) as exc:
        raise SelftuneError(
            f"{path} is not a Matrix login selftune wrote ({exc}); run `selftune matrix login` "
            "again"
        ) from exc


def normalise_user(user: str, homeserver: str) -> str:
    """'@me:server' as given, or '@me:<homeserver host>' for a bare 'me'."""
    if user.startswith("@") and ":" in user:
        return user
    from urllib.parse import urlparse

    host = urlparse(homeserver).hostname or ""
    return f"@{user.lstrip('@')}:{host}"
