"""Fitting a whole prompt into a token budget by priority: parts, the report, errors, safety."""

from __future__ import annotations

import html
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptkit import (
    ChatTemplate,
    ConfigurationError,
    Example,
    Fit,
    FitReport,
    Part,
    Prompt,
    Template,
    TemplateError,
    TemplateSyntaxError,
    TokenBudgetError,
    TokenBudgetSelector,
    count_tokens,
)
from promptkit._messages import Message
from promptkit._tokens import REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE
from promptkit.testing import MockBackend

RAG = """
{% role "system" %}{% part "system" priority=none %}You answer from the documents. Cite them as [n].{% endpart %}
{% endrole %}
{% role "user" %}Documents:
{% for d in docs %}{% part "doc" priority=20 - loop.index0 truncate="end" marker=" [cut]" %}[{{ loop.index }}] {{ d }}
{% endpart %}{% endfor %}{% endrole %}
{% messages history %}
{% role "user" %}{{ question }}{% endrole %}
"""
EXAMPLE = ChatTemplate([("user", "{{ input }}"), ("assistant", "{{ output }}")])
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
]


def _words(seed: int, n: int) -> str:
    return " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(n))


def _rag_inputs() -> dict[str, Any]:
    docs = [f"document {i}: " + _words(i, 45) for i in range(20)]
    history: list[tuple[str, str]] = []
    for i in range(30):
        history += [("user", f"turn {i}: " + _words(i, 12)), ("assistant", f"reply {i}: " + _words(i + 1, 14))]
    return {"docs": docs, "history": history, "question": "Which document mentions sigma first?"}


EXAMPLES = [{"input": f"example question {i} " + _words(i, 10), "output": f"example answer {i}"} for i in range(8)]


def _rag_prompt(budget: int = 2000, **fit: Any) -> Prompt[str]:
    parts = {"history": Part(5), "examples": Part(30)}
    return Prompt(
        ChatTemplate.from_source(RAG),
        MockBackend(["ok"]),
        examples=EXAMPLES,
        example_template=EXAMPLE,
        fit=Fit(budget=budget, parts=parts, **fit),
    )


def _drop_order(report: FitReport) -> list[str]:
    """Names of the parts with a priority, in the order fitting may take them (ties: later first)."""
    positions = {row.name: i for i, row in enumerate(report.rows)}
    ranked = [r for r in report.rows if r.priority is not None]
    return [r.name for r in sorted(ranked, key=lambda r: (r.priority, -positions[r.name]))]


def _message_tokens(messages: list[Message]) -> int:
    return count_tokens(messages) - REPLY_PRIMING_TOKENS


# -- the case: system, 20 documents, 30 turns, 8 examples into 2,000 tokens ---------------
def test_rag_prompt_fits_by_priority_and_the_report_matches_a_separate_count() -> None:
    inputs = _rag_inputs()
    prompt = _rag_prompt()
    report = prompt.fit(**inputs)
    messages = list(report.messages)

    # the total is what count_tokens says of the messages, within the budget
    assert report.tokens == count_tokens(messages) <= 2000
    unfitted = Prompt(ChatTemplate.from_source(RAG), examples=EXAMPLES, example_template=EXAMPLE).render(**inputs)
    assert report.tokens_before == count_tokens(unfitted) > 2500

    # exactly by priority: every part before the boundary in the drop order is gone, every one
    # after it is whole, and only the boundary part is partly kept
    order = _drop_order(report)
    actions = [report.row(name).action for name in order]
    boundary = max(i for i, a in enumerate(actions) if a != "kept")
    assert all(a == "dropped" for a in actions[:boundary])
    assert actions[boundary] in ("cut", "dropped")
    assert all(a == "kept" for a in actions[boundary + 1 :])
    # with these sizes: documents 20..17 (priorities 1-4) go, then the history (5) loses its
    # oldest turns; it ties with document 16 (priority 5) and goes first, standing later
    assert order[:5] == ["doc[19]", "doc[18]", "doc[17]", "doc[16]", "history"]
    assert [report.row(f"doc[{i}]").action for i in (19, 18, 17, 16)] == ["dropped"] * 4
    history = report.row("history")
    assert history.action == "cut"
    assert history.units is not None
    assert history.units[0] == 30
    kept_turns = history.units[1]
    assert 0 < kept_turns < 30
    assert all(report.row(f"doc[{i}]").action == "kept" for i in range(16))
    assert report.row("examples").action == "kept"
    assert report.row("examples").units == (8, 8)
    assert report.row("system").action == "kept"

    # the messages: system, documents, the newest turns, the examples, the question
    assert messages[0].role == "system"
    docs_text = messages[1].text
    for i in range(20):
        assert (f"[{i + 1}] {inputs['docs'][i]}" in docs_text) == (i < 16)
    kept_history = [Message(role, text) for role, text in inputs["history"][-2 * kept_turns :]]
    assert messages[2 : 2 + 2 * kept_turns] == kept_history
    assert [m.text for m in messages[2 + 2 * kept_turns : -1]] == [
        text for e in EXAMPLES for text in (e["input"], e["output"])
    ]
    assert messages[-1] == Message("user", inputs["question"])

    # each row counted on its own text, independently
    for i in range(16):
        row = report.row(f"doc[{i}]")
        assert row.tokens_before == row.tokens_after == count_tokens(f"[{i + 1}] {inputs['docs'][i]}\n")
    assert history.tokens_after == _message_tokens(kept_history)
    all_history = [Message(role, text) for role, text in inputs["history"]]
    assert history.tokens_before == _message_tokens(all_history)
    assert report.row("system").tokens_after == count_tokens("You answer from the documents. Cite them as [n].")
    # and the rows are consistent with the total: fixed framing plus the parts
    assert sum(r.tokens_after for r in report.rows) < report.tokens


def test_a_tighter_budget_cuts_a_document_at_the_boundary() -> None:
    inputs = _rag_inputs()
    report = _rag_prompt(budget=1200).fit(**inputs)
    assert report.tokens == count_tokens(list(report.messages)) <= 1200
    assert report.row("history").action == "dropped"
    order = _drop_order(report)
    actions = [report.row(name).action for name in order]
    cut = [name for name, action in zip(order, actions, strict=True) if action == "cut"]
    assert len(cut) == 1
    boundary = order.index(cut[0])
    assert all(a == "dropped" for a in actions[:boundary])
    assert all(a == "kept" for a in actions[boundary + 1 :])
    row = report.row(cut[0])
    # no history left: the documents and the question are one user message, as an ordinary
    # render with an empty history makes them
    text = report.messages[-1].text
    assert text.startswith("Documents:")
    assert text.endswith(_rag_inputs()["question"])
    assert text.count(" [cut]") == 1
    assert 0 < row.tokens_after < row.tokens_before
    # the budget is used up to the last few tokens (the cut keeps what still fits)
    assert report.tokens > 1200 - 10


def test_fitting_is_deterministic() -> None:
    inputs = _rag_inputs()
    first = _rag_prompt().fit(**inputs)
    again = _rag_prompt().fit(**inputs)
    assert first == again
    assert first.messages == again.messages


def test_reserve_keeps_room_for_the_answer() -> None:
    inputs = _rag_inputs()
    report = _rag_prompt(reserve=500).fit(**inputs)
    assert report.limit == 1500
    assert report.tokens <= 1500
    # without a reserve, the call's max_tokens is kept free
    prompt = _rag_prompt().with_params(max_tokens=300)
    assert prompt.fit(**inputs).reserve == 300
    assert prompt.fit(**inputs).tokens <= 1700


# -- end to end: run, preview, render -------------------------------------------------------------
def test_run_sends_the_fitted_messages_and_the_result_shows_the_fit() -> None:
    inputs = _rag_inputs()
    prompt = _rag_prompt()
    backend = prompt.backend
    assert isinstance(backend, MockBackend)
    result = prompt.run(**inputs)
    assert result.fit is not None
    assert list(backend.calls[-1].messages) == list(result.fit.messages) == list(result.messages)
    assert result.fit.tokens <= 2000
    assert "fitted" in result._repr_html_()
    assert prompt.render(**inputs) == list(result.fit.messages)


def test_a_batch_fits_every_item() -> None:
    inputs = _rag_inputs()
    items = [{**inputs, "question": f"Question {i}?"} for i in range(8)]
    prompt = _rag_prompt().with_backend(MockBackend(["ok"] * 8))
    result = prompt.batch(items, max_concurrency=4, progress=False)
    assert result.values == ["ok"] * 8
    expected = _rag_prompt().fit(**inputs)
    for item, row in zip(items, result, strict=True):
        assert row.result is not None
        fitted = row.result.fit
        assert fitted is not None
        assert fitted.tokens <= 2000
        assert fitted.messages[-1] == Message("user", item["question"])
        assert [r.action for r in fitted.rows] == [r.action for r in expected.rows]


def test_preview_carries_the_fit() -> None:
    inputs = _rag_inputs()
    preview = _rag_prompt().preview(**inputs)
    assert preview.fit is not None
    assert preview.input_tokens == preview.fit.tokens
    assert "fit=" in repr(preview)
    assert "<b>Fit</b>" in preview._repr_html_()


def test_a_prompt_without_a_fit_is_unchanged() -> None:
    inputs = _rag_inputs()
    prompt = Prompt(ChatTemplate.from_source(RAG), MockBackend(["ok"]))
    assert prompt.fitting is None
    assert prompt.run(**inputs).fit is None
    messages = prompt.render(**inputs)
    assert "[20] document 19" in messages[1].text
    assert prompt.with_fit(500).fitting == Fit(budget=500)
    with pytest.raises(ConfigurationError, match="needs a budget"):
        prompt.fit(**inputs)
    assert prompt.fit(2500, **inputs).tokens <= 2500


# -- examples -------------------------------------------------------------------------------------
def test_examples_go_worst_scored_first_after_selection() -> None:
    pool = [
        Example({"input": f"q{i} " + _words(i, 8), "output": f"a{i}"}, {"score": s})
        for i, s in enumerate([5, 9, 1, 7, 3])
    ]
    selector = TokenBudgetSelector(pool, max_tokens=10_000, score="score")
    prompt = Prompt(
        "Examples:\n{{ examples }}\n\nQ: {{ q }}",
        MockBackend(["ok"]),
        examples=selector,
        example_template="Q: {{ input }}\nA: {{ output }}",
        fit=Fit(budget=60, parts={"examples": Part(1)}),
    )
    result = prompt.run(q="why?")
    assert result.fit is not None
    row = result.fit.row("examples")
    assert row.units is not None
    assert row.units[0] == 5
    kept = row.units[1]
    assert 0 < kept < 5
    # the kept ones are the best-scored, in the order the selector gave them
    best = sorted((e.metadata["score"] for e in pool), reverse=True)[:kept]
    assert sorted(e.metadata["score"] for e in result.examples) == sorted(best)
    assert result.examples.scores == tuple(sorted(result.examples.scores, reverse=True))
    text = result.messages[0].text
    for example in result.examples:
        assert f"Q: {example['input']}\nA: {example['output']}" in text
    assert result.fit.tokens == count_tokens(list(result.messages)) <= 60


def test_examples_as_chat_turns_lose_whole_examples() -> None:
    prompt = Prompt(
        [("system", "Be brief."), ("user", "{{ q }}")],
        MockBackend(),
        examples=EXAMPLES,
        example_template=EXAMPLE,
        fit=Fit(budget=150, parts={"examples": Part(1)}),
    )
    report = prompt.fit(q="hello")
    kept = report.row("examples").units
    assert kept is not None
    assert 0 < kept[1] < 8
    roles = [m.role for m in report.messages]
    assert roles == ["system", *["user", "assistant"] * kept[1], "user"]
    # no scores: the later examples go first
    assert report.messages[1].text == EXAMPLES[0]["input"]


# -- variables, loops, markers, middle cuts, fallbacks --------------------------------------------
def test_a_variable_given_a_part_is_cut_in_the_middle_with_its_marker() -> None:
    doc = " ".join(f"w{i}" for i in range(400))
    prompt = Prompt(
        "Summarise:\n{{ doc }}\nEnd.",
        MockBackend(),
        fit=Fit(budget=80, parts={"doc": Part(1, truncate="middle", marker=" [...] ")}),
    )
    report = prompt.fit(doc=doc)
    text = report.messages[0].text
    assert report.tokens == count_tokens(list(report.messages)) <= 80
    assert text.startswith("Summarise:\nw0 w1")
    assert text.endswith(" w399\nEnd.")
    body = text[len("Summarise:\n") : -len("\nEnd.")]
    head, tail = body.split(" [...] ")
    assert doc.startswith(head)
    assert doc.endswith(tail)
    assert report.row("doc").action == "cut"
    assert report.row("doc").tokens_after == count_tokens(body)


def test_start_truncation_keeps_the_end() -> None:
    chat = ChatTemplate.from_source(
        '{% role "user" %}{% part "log" truncate="start" marker="..." %}{{ log }}\n{% endpart %}'
        "What failed?{% endrole %}"
    )
    log = "\n".join(f"line {i}: ok" for i in range(300)) + "\nline 300: ERROR disk full"
    report = Prompt(chat, MockBackend()).fit(60, log=log)
    text = report.messages[0].text
    assert text.startswith("...")
    assert text.endswith("line 300: ERROR disk full\nWhat failed?")
    assert (log + "\n").endswith(text[3 : -len("What failed?")])


def test_list_items_given_a_part_are_parts_of_their_own() -> None:
    docs = [f"doc {i} " + _words(i, 30) for i in range(6)]
    prompt = Prompt(
        "{% for d in docs %}{{ d }}\n{% endfor %}Q?",
        MockBackend(),
        fit=Fit(budget=120, parts={"docs": Part(1)}),
    )
    report = prompt.fit(docs=docs)
    names = [r.name for r in report.rows]
    assert names == [f"docs[{i}]" for i in range(6)]
    dropped = [r.name for r in report.rows if r.action == "dropped"]
    assert dropped == [f"docs[{i}]" for i in range(6 - len(dropped), 6)]  # equal priority: the later first
    assert report.tokens <= 120


def test_a_dropped_part_shows_its_fallback() -> None:
    chat = ChatTemplate.from_source(
        '{% role "system" %}Rules.{% endrole %}'
        '{% role "user" %}{% part "context" priority=1 fallback="(context omitted)" %}{{ ctx }}{% endpart %}'
        " {{ q }}{% endrole %}"
    )
    report = Prompt(chat, MockBackend()).fit(30, ctx=_words(1, 200), q="Go?")
    assert report.messages[1].text == "(context omitted) Go?"
    row = report.row("context")
    assert row.action == "fallback"
    assert row.tokens_after == count_tokens("(context omitted)")


def test_a_part_around_role_blocks_drops_whole_messages() -> None:
    chat = ChatTemplate.from_source(
        '{% role "system" %}S{% endrole %}'
        '{% part "aside" priority=1 %}{% role "user" %}{{ a }}{% endrole %}{% role "assistant" %}noted{% endrole %}'
        '{% endpart %}{% role "user" %}{{ q }}{% endrole %}'
    )
    prompt = Prompt(chat, MockBackend())
    full = prompt.fit(10_000, a=_words(2, 100), q="Q")
    assert [m.role for m in full.messages] == ["system", "user", "assistant", "user"]
    report = prompt.fit(40, a=_words(2, 100), q="Q")
    assert [m.role for m in report.messages] == ["system", "user"]
    assert report.row("aside").action == "dropped"


def test_nested_parts_go_with_their_parent() -> None:
    template = Template(
        '{% part "outer" priority=1 %}A {% part "inner" priority=9 %}{{ x }}{% endpart %}{% endpart %}B'
    )
    report = Prompt(template, MockBackend()).fit(12, x=_words(3, 60))
    assert report.row("outer").action == "dropped"
    inner = report.row("inner")
    assert inner.action == "dropped"
    assert inner.reason == "with outer"
    assert report.messages[0].text == "B"


def test_max_tokens_caps_a_part_whatever_the_budget() -> None:
    template = Template('{% part "doc" priority=none max_tokens=20 marker="…" %}{{ doc }}{% endpart %} end')
    report = Prompt(template, MockBackend()).fit(10_000, doc=_words(4, 200))
    row = report.row("doc")
    assert row.action == "cut"
    assert row.reason == "max_tokens"
    assert row.tokens_after <= 20
    assert report.messages[0].text.endswith("… end")


def test_history_can_drop_the_newest_turns_first() -> None:
    chat = ChatTemplate.from_source('{% messages history %}{% role "user" %}{{ q }}{% endrole %}')
    history = [
        ("user", f"u{i} " + _words(i, 10)) if j == 0 else ("assistant", f"a{i}") for i in range(10) for j in (0, 1)
    ]
    prompt = Prompt(chat, MockBackend(), fit=Fit(budget=60, parts={"history": Part(1, drop="newest")}))
    report = prompt.fit(history=history, q="Q")
    kept = report.row("history").units
    assert kept is not None
    assert 0 < kept[1] < 10
    assert [m.text for m in report.messages[:-1]] == [text for _, text in history[: 2 * kept[1]]]


def test_the_report_displays() -> None:
    report = _rag_prompt().fit(**_rag_inputs())
    assert repr(report).startswith(f"<FitReport {report.tokens}/2000 tokens")
    assert "history cut" in repr(report)
    text = str(report)
    assert "doc[19]" in text
    assert "dropped" in text
    page = report._repr_html_()
    assert "<table>" in page
    assert html.escape("doc[19]") in page


def test_templates_fit_on_their_own() -> None:
    inputs = _rag_inputs()
    chat = ChatTemplate.from_source(RAG)
    report = chat.fit_parts(Fit(budget=2000, parts={"history": Part(5)}), **inputs)
    assert report.tokens == count_tokens(list(report.messages)) <= 2000
    assert report.row("history").action == "cut"
    plain = Template('{% part "doc" truncate="end" %}{{ doc }}{% endpart %} Summarise.')
    fitted = plain.fit_parts(30, doc=_words(6, 200))
    assert fitted.tokens <= 30
    assert fitted.messages[0].text.endswith(" Summarise.")
    with pytest.raises(ConfigurationError, match="needs a Fit"):
        plain.fit_parts(None, doc="x")  # type: ignore[arg-type]


# -- never splitting a character ------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(alphabet=st.sampled_from(list("aé漢字🙂👍🏽 \n.,ü")), min_size=1, max_size=300),
    budget=st.integers(min_value=5, max_value=120),
    side=st.sampled_from(["end", "start", "middle"]),
)
def test_cuts_never_split_a_character(text: str, budget: int, side: str) -> None:
    template = Template('{% part "t" truncate=side marker="|" %}{{ text }}{% endpart %}')
    try:
        report = Prompt(template, MockBackend()).fit(budget, text=text, side=side)
    except TokenBudgetError:
        return
    out = report.messages[0].text
    assert report.tokens == count_tokens(list(report.messages)) <= budget
    assert "\ufffd" not in out
    if report.row("t").action == "kept":
        assert out == text
    elif report.row("t").action == "cut":
        if side == "end":
            assert out.endswith("|")
            assert text.startswith(out[:-1])
        elif side == "start":
            assert out.startswith("|")
            assert text.endswith(out[1:])
        else:
            head, _, tail = out.partition("|")
            assert text.startswith(head)
            assert text.endswith(tail)


# -- the sandbox ----------------------------------------------------------------------------------
def test_parts_print_nothing_outside_a_fit() -> None:
    template = Template('a{% part "p" priority=2 %}b{% endpart %}c')
    assert template.render() == "abc"
    assert "<mark></mark>" not in template.preview()._repr_html_()
    chat = ChatTemplate.from_source('{% role "user" %}{% part "p" %}x{% endpart %}{% endrole %}')
    assert chat.render() == [Message("user", "x")]


def test_part_blocks_cannot_be_captured() -> None:
    for source in (
        '{% macro m() %}{% part "p" %}x{% endpart %}{% endmacro %}{{ m() }}',
        '{% set s %}{% part "p" %}x{% endpart %}{% endset %}{{ s }}',
        '{% filter upper %}{% part "p" %}x{% endpart %}{% endfilter %}',
    ):
        with pytest.raises(TemplateSyntaxError, match="part blocks cannot be inside"):
            Template(source)


def test_a_captured_value_loses_its_markers_and_stays_text() -> None:
    template = Template("{% set s %}[{{ doc }}]{% endset %}{{ s }}")
    prompt = Prompt(template, MockBackend(), fit=Fit(budget=1000, parts={"doc": Part(1, truncate="end")}))
    assert prompt.render(doc="hello") == [Message("user", "[hello]")]


def test_values_cannot_forge_parts() -> None:
    template = Template('{% part "p" priority=1 %}{{ v }}{% endpart %}')
    forged = '\x00pk0000:f["x", 0, null, null, "", ""]\x01 {% part "x" %}'
    report = Prompt(template, MockBackend()).fit(1000, v=forged)
    assert report.messages[0].text == forged
    assert [r.name for r in report.rows] == ["p"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{% part "p" priority="high" %}x{% endpart %}', "priority must be a finite number"),
        ('{% part "p" truncate="left" %}x{% endpart %}', "truncate must be"),
        ('{% part "p" max_tokens=-1 %}x{% endpart %}', "max_tokens must be"),
        ('{% part "p" marker=3 %}x{% endpart %}', "marker must be a str"),
    ],
)
def test_bad_part_options_name_the_part(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message) as info:
        Template(source).render()
    assert "part 'p'" in str(info.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{% part "p" colour=1 %}x{% endpart %}', "unknown part option 'colour'"),
        ('{% part "p" priority=1 priority=2 %}x{% endpart %}', "given twice"),
        ('{% part "" %}x{% endpart %}', "non-empty name"),
        ("{% part p %}x{% endpart %}", "expected token 'string'"),
    ],
)
def test_bad_part_tags_are_syntax_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError, match=message):
        Template(source)


# -- errors ---------------------------------------------------------------------------------------
def test_a_budget_below_what_cannot_be_cut_names_those_parts() -> None:
    inputs = _rag_inputs()
    with pytest.raises(TokenBudgetError) as info:
        _rag_prompt(budget=20).fit(**inputs)
    err = info.value
    names = dict(err.parts)
    assert names["system"] == count_tokens("You answer from the documents. Cite them as [n].")
    assert "text outside parts" in names
    assert err.budget == 20
    assert err.minimum > 20
    assert "system 12 tokens" in str(err)
    assert "over the limit of 20" in str(err)


def test_configuration_errors() -> None:
    inputs = _rag_inputs()
    with pytest.raises(ConfigurationError, match="reserve=3000 is more than the budget"):
        _rag_prompt(reserve=3000).fit(**inputs)
    with pytest.raises(ConfigurationError, match="'nope'"):
        _rag_prompt().fit(parts={"nope": Part(1)}, **inputs)
    with pytest.raises(ConfigurationError, match="budget"):
        Fit(budget=-1)
    with pytest.raises(ConfigurationError, match="truncate"):
        Part(truncate="left")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="drop"):
        Part(drop="random")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="fit must be"):
        Prompt("x", fit="big")  # type: ignore[call-overload]
    with pytest.raises(ConfigurationError, match="loses whole turns"):
        _rag_prompt().fit(parts={"history": Part(1, marker="...")}, **inputs)
    composite = Template('{% part "p" truncate="end" %}{% part "q" %}x{% endpart %}{% endpart %}')
    with pytest.raises(ConfigurationError, match="dropped whole"):
        Prompt(composite, MockBackend()).fit(100)


def test_tokens_count_with_the_backends_tokenizer() -> None:
    template = Template('{% part "p" truncate="end" %}{{ x }}{% endpart %}')
    text = _words(5, 300)
    gpt4 = Prompt(template, MockBackend()).fit(Fit(budget=50, model="gpt-4"), x=text)
    assert gpt4.encoding == "cl100k_base"
    assert gpt4.tokens == count_tokens(list(gpt4.messages), model="gpt-4")
    default = Prompt(template, MockBackend()).fit(50, x=text)
    assert default.encoding == "o200k_base"
    assert TOKENS_PER_MESSAGE + REPLY_PRIMING_TOKENS < default.tokens <= 50
