"""The report's sections, in the order they run and appear (each one module, one `Section`; see
`evaluation.section`): perplexity, replies to held-out chats, note continuations, leak tests,
boundaries (what a contact is told of conversations they were not in), the improvement the
owner's picks made, and facts recall with and without memory."""

from selftune.evaluation.section import Section
from selftune.evaluation.sections import (
    boundaries,
    facts_recall,
    improvement,
    leak_tests,
    note_continuations,
    perplexity,
    replies,
)

SECTIONS: list[Section] = [
    perplexity.SECTION,
    replies.SECTION,
    note_continuations.SECTION,
    leak_tests.SECTION,
    boundaries.SECTION,
    improvement.SECTION,
    facts_recall.SECTION,
]

__all__ = ["SECTIONS", "Section"]
