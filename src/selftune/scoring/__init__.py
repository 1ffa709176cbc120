"""Scores that several stages share, below all of them: who wrote a text (`authorship`: the
evaluation's "taken for you?" and one of the ranker's features) and which candidate the owner
would pick (`ranker`: fitted by improve, used to order candidates, scored by the evaluation)."""
