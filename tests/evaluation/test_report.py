"""The verdict sentence and the HTML page, from reports whose numbers are known."""

from __future__ import annotations

from selftune.evaluation.charts import bar_chart, line_chart
from selftune.evaluation.html import render_html
from selftune.evaluation.verdict import verdict


def report(**extra) -> dict:
    base = {
        "run": "r1",
        "dataset": "d1",
        "base_model": "embedded",
        "split": "valid",
        "perplexity": {"base": 30.0, "tuned": 20.0},
        "scored_tokens": 100,
        "perplexity_by_source": {
            "whatsapp": {"base": 30.0, "tuned": 15.0, "tokens": 80},
            "mail": {"base": 20.0, "tuned": 19.9, "tokens": 20},
        },
        "perplexity_by_kind": {},
    }
    return base | extra


def test_verdict_from_perplexity_alone_says_closer_to_your_words_never_sounds_like_you():
    text = verdict(report())
    assert text.startswith(
        "Closer to your words than the base on WhatsApp (perplexity 0.50x), "
        "not closer on email (perplexity 0.99x)."
    )
    assert "sounds like you" not in text.casefold()


def auth(accuracy, tuned, base=0.2, real=0.8):
    return {
        "held_out_accuracy": accuracy,
        "real": {"taken_for_owner": real},
        "base": {"taken_for_owner": base},
        "tuned": {"taken_for_owner": tuned},
    }


def test_verdict_sounds_like_you_only_with_a_classifier_above_chance():
    text = verdict(report(authorship=auth(0.85, 0.7)))
    assert "Sounds like you in chats: an authorship classifier that tells your messages" in text
    assert "85% of the time takes 70% of the tuned model's for yours (base 20%" in text


def test_verdict_at_chance_says_nothing_about_sounding_like_you():
    text = verdict(report(authorship=auth(0.52, 0.9)))
    assert "sounds like you" not in text.replace("whether the twin sounds like you", "").casefold()
    assert "classifier for chats is at chance" in text and "52%" in text


def test_verdict_above_chance_but_not_taken_for_you_says_not_yet():
    text = verdict(report(authorship=auth(0.8, 0.3, base=0.35)))
    assert "Not yet like you in chats: an authorship classifier" in text
    assert "Sounds like you" not in text


def test_verdict_style_names_its_distances():
    style = {"distance": {"base": {"distance": 1.5}, "tuned": {"distance": 0.9}}}
    text = verdict(report(style=style))
    assert "The replies' style closer to yours than the base's (style distance 1.50 → 0.90)" in text
    assert "Sounds like you" not in text


def test_verdict_notes_classifier_names_its_not_you_class():
    notes = {"authorship": auth(0.5, 0.6) | {"not_you": "other people's messages"}}
    text = verdict(report(notes=notes))
    assert "classifier for notes is at chance" in text and "other people's messages 50%" in text


def test_verdict_states_facts_with_memory():
    memory = {"fact_probes": {"facts_stated": {"tuned_with_memory": {
        "probes": 4, "stated": 3, "contradicted": 1},
        "tuned_without_memory": {"probes": 4, "stated": 0, "contradicted": 2}}}}  # fmt: skip
    text = verdict(report(memory=memory))
    assert (
        "stated 3 of 4 of your public facts" in text
        and "contradicted 1; without memory it stated 0" in text
    )


def test_verdict_reports_leaks():
    leaks = {
        "canaries": {"planted": 3, "flagged": 1, "rows": []},
        "regurgitation": {"verbatim": 0, "free_sampling": {"verbatim": 0}},
        "pii": {"free": {"private_emissions": 0}, "probes": {"private_emissions": 0}},
    }
    text = verdict(report(leaks=leaks))
    assert "1 of 3 canaries LEAKED" in text
    assert "0 verbatim copies" in text
    assert "no private fact" in text
    leaks["canaries"]["flagged"] = 0
    assert "no canary leaked (3 planted)" in verdict(report(leaks=leaks))


def test_verdict_without_improvement():
    r = report(perplexity_by_source={"whatsapp": {"base": 10.0, "tuned": 11.0, "tokens": 5}})
    assert verdict(r).startswith(
        "Not closer to your words than the base on WhatsApp (perplexity 1.10x)"
    )


def test_html_is_self_contained_and_shows_the_numbers():
    page = render_html(
        report(verdict="V", train={"curve": {"train": [[1, 3.0], [2, 2.0]], "valid": []}})
    )
    assert "<script" not in page and "<link" not in page
    assert "15.000" in page and "<svg" in page and "<polyline" in page


def test_charts_handle_empty_input():
    assert bar_chart({}, "t") == ""
    assert line_chart({"train": []}, "t") == ""
    assert "rect" in bar_chart({"a": {"base": 2.0, "tuned": 1.0}}, "t")


def test_the_cli_summary_has_each_sections_lines_in_order(capsys, tmp_path):
    from selftune.cli.eval_commands import print_summary

    style = {"distance": {"base": {"distance": 1.4}, "tuned": {"distance": 0.9}}}
    budget = {"minutes": 3.0, "left_out": ["notes: 2 of 8 note beginnings (...)"]}
    r = report(verdict="V.", style=style, budget=budget)
    print_summary(r, tmp_path)
    lines = capsys.readouterr().out.split("\n")
    assert lines[1] == "V."
    assert lines[3] == "Held-out perplexity (100 of your tokens): base 30.00 → tuned 20.00"
    assert " ".join(lines[4].split()) == "whatsapp base 30.00 → tuned 15.00 (80 tokens)"
    assert lines[6] == "Style distance to your replies: base 1.4 → tuned 0.9"
    assert lines[7].startswith("Left out for the 3-minute budget: notes: 2 of 8")
    assert lines[8] == f"Report: {tmp_path / 'report.html'}"
