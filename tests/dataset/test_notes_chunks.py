"""Note chunks keep structure: title first, depth kept, never cut inside a block."""

from __future__ import annotations

from selftune.dataset.notes_chunks import note_chunks, parse_outline

from .conftest import words


def count(texts):
    return [words(t) for t in texts]


MARKDOWN = """intro line one
still the intro

## feeding
- 50g starter
    - rye if she's sulking
    - warm spot
- ready when doubled
    - see [[Tide notes]]

## method
1. mix
2. fold
```
code stays whole
   even indented
```
#baking"""


def test_outline_tree_follows_headings_and_indentation():
    lines, root = parse_outline(MARKDOWN)
    feeding = root.children[1]
    assert lines[feeding.start] == "## feeding"
    first_item = feeding.children[0]
    assert lines[first_item.start] == "- 50g starter"
    assert [lines[c.start].strip() for c in first_item.children] == [
        "- rye if she's sulking",
        "- warm spot",
    ]


def test_a_short_note_is_one_chunk_with_the_title_first_and_links_kept():
    chunks, cut = note_chunks("Sourdough", MARKDOWN, 500, count)
    assert chunks == [f"# Sourdough\n\n{MARKDOWN}"]
    assert cut == 0 and "[[Tide notes]]" in chunks[0]


def test_long_notes_split_only_where_a_block_ends_and_every_chunk_has_the_title():
    chunks, _ = note_chunks("Sourdough", MARKDOWN, 18, count)
    assert len(chunks) > 1
    assert all(c.startswith("# Sourdough\n\n") for c in chunks)
    body = "\n".join(chunks)
    # a child never appears without its parent line in the same chunk
    for chunk in chunks:
        if "rye if she's sulking" in chunk:
            assert "- 50g starter" in chunk
        if "code stays whole" in chunk:
            assert "even indented" in chunk
    for line in MARKDOWN.splitlines():
        assert line in body  # nothing lost


def test_a_section_split_over_chunks_repeats_its_heading():
    chunks, _ = note_chunks("S", MARKDOWN, 14, count)
    with_feeding_items = [c for c in chunks if "ready when doubled" in c or "50g starter" in c]
    assert all("## feeding" in c for c in with_feeding_items)


def test_roam_outline_keeps_depth():
    outline = "- a\n  - b\n    - c\n  - d\n- e\n  - f"
    chunks, _ = note_chunks("Page", outline, 8, count)
    assert chunks == ["# Page\n\n- a\n  - b\n    - c\n  - d", "# Page\n\n- e\n  - f"]


def test_a_block_longer_than_a_chunk_is_cut_between_lines_and_counted():
    text = "\n".join(f"line {i} of a long paragraph" for i in range(20))
    chunks, cut = note_chunks("Long", text, 40, count)
    assert cut == len(chunks) - 1 > 0


def test_empty_notes_give_nothing():
    assert note_chunks("Empty", "  \n\n", 100, count) == ([], 0)
