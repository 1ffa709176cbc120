"""Sessions, turns and windows: the rules that decide what is context and what is a target."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from selftune.dataset.sessions import (
    MEDIA_PLACEHOLDER,
    as_messages,
    merge_turns,
    split_sessions,
    windows,
)

from .conftest import msg


def test_a_gap_of_two_days_at_the_same_hour_splits_even_with_a_long_gap_setting():
    messages = [msg("Tobias", "hi", 0), msg("Mags", "hey", 2 * 24 * 60)]
    assert len(split_sessions(messages, timedelta(days=7))) == 2
    assert len(split_sessions(messages, timedelta(minutes=60))) == 2


def test_the_gap_setting_splits_and_joins():
    messages = [msg("Tobias", "a", 0), msg("Mags", "b", 30), msg("Tobias", "c", 100)]
    assert [len(s) for s in split_sessions(messages, timedelta(minutes=60))] == [2, 1]
    assert [len(s) for s in split_sessions(messages, timedelta(minutes=90))] == [3]


def test_consecutive_messages_merge_with_line_breaks_and_two_incoming_are_both_context():
    session = [
        msg("Tobias", "are you free?", 0),
        msg("Tobias", "want to eat together?", 1),
        msg("Mags", "yes!", 2),
        msg("Mags", "where?", 3),
    ]
    turns = merge_turns(session)
    assert [(t.author, t.text) for t in turns] == [
        ("Tobias", "are you free?\nwant to eat together?"),
        ("Mags", "yes!\nwhere?"),
    ]
    messages = as_messages(turns, group=False)
    assert messages == [
        {"role": "user", "content": "are you free?\nwant to eat together?"},
        {"role": "assistant", "content": "yes!\nwhere?"},
    ]


def test_group_chats_keep_who_said_what_and_several_speakers_are_one_user_message():
    session = [
        msg("Priya", "meeting moved", 0, conversation_kind="group"),
        msg("Dev", "which day?", 1, conversation_kind="group"),
        msg("Mags", "thursday dev", 2, conversation_kind="group"),
    ]
    messages = as_messages(merge_turns(session), group=True)
    assert messages[0] == {"role": "user", "content": "Priya: meeting moved\nDev: which day?"}
    assert messages[1] == {"role": "assistant", "content": "thursday dev"}


def test_media_deleted_system_bots_and_forwards_never_become_targets():
    filtered: Counter[str] = Counter()
    session = [
        msg("Tobias", "image omitted", 0, kind="media"),
        msg("", "Tobias added Pete", 1, kind="system"),
        msg("Mags", "This message was deleted", 2, kind="deleted"),
        msg("Mags", "image omitted", 3, kind="media"),
        msg("Mags", "Octopuses have three hearts", 4, forwarded_from="Daily Science"),
        msg("Helper", "Reminder: bins tonight", 5, bot=True),
        msg("Mags", "lovely photo", 6),
    ]
    turns = merge_turns(session, filtered=filtered)
    assert [(t.is_me, t.text) for t in turns] == [
        (False, MEDIA_PLACEHOLDER),
        (True, "lovely photo"),
    ]
    assert filtered == Counter(
        {
            "system message": 1,
            "deleted message": 1,
            "your media message (not text to learn)": 1,
            "forwarded, not written by you": 1,
            "bot or automated message": 1,
        }
    )


def test_windows_end_on_an_owner_turn_and_train_each_target_once():
    session = []
    for i in range(10):
        session += [msg("Tobias", f"q{i}", 2 * i), msg("Mags", f"a{i}", 2 * i + 1)]
    turns = merge_turns(session)
    for t in turns:
        t.tokens = 1
    cuts = windows(turns, max_turns=4, max_tokens=1000)
    assert all(turns[b - 1].is_me for _, b in cuts)
    targets = [i for a, b in cuts for i in range(a, b) if turns[i].is_me]
    assert targets == sorted(set(targets)) == [i for i, t in enumerate(turns) if t.is_me]
    assert all(b - a <= 4 for a, b in cuts)


def test_the_first_turn_of_a_session_may_be_the_owners():
    turns = merge_turns([msg("Mags", "morning all", 0), msg("Tobias", "hi", 1)])
    for t in turns:
        t.tokens = 1
    assert windows(turns, 16, 100) == [(0, 1)]
    assert as_messages(turns[:1], False) == [{"role": "assistant", "content": "morning all"}]
