"""`selftune people --exclude`: any letter case of any known name, author id or alias; a name that
matches nobody is refused (with nothing changed), and the excluded person's chats never train."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from selftune.cli import cli
from selftune.config import BuildConfig
from selftune.records import Message
from selftune.store import Store
from selftune.workspace import init_workspace

T0 = datetime(2024, 3, 14, 9, 0, tzinfo=UTC)


def chat(conversation: str, other: str, author_id: str | None = None) -> list[Message]:
    """Three days of a chat: the other asks, Mags answers."""
    out = []
    for day in range(3):
        for k, (author, text) in enumerate(
            [(other, f"how is the hive {day}?"), ("Mags", f"busy, {day} frames of brood")]
        ):
            out.append(
                Message(
                    source="whatsapp",
                    conversation_id=conversation,
                    conversation_title=other,
                    timestamp=T0 + timedelta(days=day, minutes=k),
                    author=author,
                    author_id=author_id if author == other else None,
                    text=text,
                    is_me=author == "Mags",
                )  # fmt: skip
            )
    return out


def people(ws, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["people", "--workspace", str(ws.root), *args])


def workspace_with_ana(tmp_path):  # type: ignore[no-untyped-def]
    ws = init_workspace(tmp_path / "twin", ["Mags"])
    messages = chat("whatsapp:tobias", "Tobias") + chat("whatsapp:ana", "Ana", "+447700900456")
    with Store(ws.store_path) as store:
        store.add_messages(messages)
    return ws


def built_conversations(ws) -> set[str]:  # type: ignore[no-untyped-def]
    from selftune.dataset.examples import build_dataset

    with Store(ws.store_path) as store:
        config = BuildConfig(probe_per_source=0, min_target_chars=1)
        data = build_dataset(store, config, "Mags", lambda t: len(t.split()))
    return {e.conversation for e in data.train + data.valid}


def test_exclude_matches_any_letter_case_and_her_chats_never_train(tmp_path):
    ws = workspace_with_ana(tmp_path)
    assert "whatsapp:ana" in built_conversations(ws)
    result = people(ws, "--exclude", "ana")
    assert result.exit_code == 0, result.output
    assert "<excluded>" in [line for line in result.output.splitlines() if "Ana" in line][0]
    assert "whatsapp:ana" not in built_conversations(ws)
    assert people(ws, "--include", "ANA").exit_code == 0
    assert "whatsapp:ana" in built_conversations(ws)


def test_exclude_by_author_id_leaves_out_the_person_under_any_name(tmp_path):
    ws = workspace_with_ana(tmp_path)
    assert people(ws, "--exclude", "+447700900456").exit_code == 0
    assert "whatsapp:ana" not in built_conversations(ws)


def test_a_name_that_matches_nobody_is_refused_and_nothing_changes(tmp_path):
    ws = workspace_with_ana(tmp_path)
    result = people(ws, "--exclude", "Tobias", "--exclude", "Anna")
    assert result.exit_code == 1
    assert "'Anna'" in result.output and "Did you mean 'Ana'" in result.output
    with Store(ws.store_path) as store:
        assert store.excluded_people() == set()  # Tobias was not excluded either
