"""A real Synapse for the Matrix tests (one per test session, a few seconds to start), its
users, and a workspace logged in as the owner."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.matrix.homeserver import Homeserver, User


@pytest.fixture(scope="session")
def homeserver(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("synapse", reason="the Matrix tests need matrix-synapse (the dev extra)")
    pytest.importorskip("nio", reason="the Matrix commands need matrix-nio (the matrix extra)")
    with Homeserver(tmp_path_factory.mktemp("synapse")) as hs:
        yield hs


@pytest.fixture(scope="session")
def make_user(homeserver: Homeserver):
    """make_user("alice", "Alice Martin") -> a registered User with that display name."""
    made: dict[str, User] = {}

    def make(localpart: str, name: str) -> User:
        if localpart not in made:
            user = User(homeserver.url, homeserver.register(localpart, "test-password"))
            user.set_name(name)
            made[localpart] = user
        return made[localpart]

    return make


def logged_in_workspace(root: Path, homeserver: Homeserver, owner: User, me: list[str]):
    """A workspace whose secrets/matrix.json holds the owner's token."""
    from selftune.matrix.account import Account, save_account
    from selftune.workspace import init_workspace

    ws = init_workspace(root, me)
    save_account(ws.root, Account(homeserver.url, owner.user_id, owner.token, None))
    return ws
