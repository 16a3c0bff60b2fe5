"""Rendering cost of promptkit templates against raw Jinja2 (the floor) and LangChain (a peer).

Run: python benchmarks/templates.py   (langchain-core is optional: pip install -r benchmarks/requirements.txt)

The case the target is set on: a precompiled chat template of 3 messages with 5 variables.
The floor is ``jinja2.Template.render`` of the same text, compiled once, without the sandbox;
promptkit should cost at most 1.5x that. LangChain's ``PromptTemplate(template_format="jinja2")``
builds a sandboxed environment and recompiles on every ``format`` call.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import jinja2
from _suite import Row, installed
from _timing import measure

from promptkit import ChatTemplate, Template

SYSTEM = "You are {{ persona }}. Answer in {{ language }}, in at most {{ max_words }} words."
USER = "Context:\n{{ context }}\n\nQuestion: {{ question }}"
ASSISTANT = "Understood. I will answer in {{ language }}."
VALUES = {
    "persona": "a careful research assistant",
    "language": "French",
    "max_words": 120,
    "context": "The Eiffel Tower was completed in 1889 for the World's Fair. " * 4,
    "question": "When was the tower finished, and why was it built?",
}
RAW_TEXT = f"{SYSTEM}\n{USER}\n{ASSISTANT}"
ROLE_SOURCE = (
    f'{{% role "system" %}}{SYSTEM}{{% endrole %}}\n'
    f'{{% role "user" %}}{USER}{{% endrole %}}\n'
    f'{{% role "assistant" %}}{ASSISTANT}{{% endrole %}}\n'
)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:9.2f} us"


def run(quick: bool) -> list[Row]:
    """The suite's rows: stored and built-per-call templates against jinja2 and LangChain."""
    raw = jinja2.Environment().from_string(RAW_TEXT)
    chat = ChatTemplate.from_source(ROLE_SOURCE)
    plain = Template(RAW_TEXT)
    pairs = [("system", SYSTEM), ("user", USER), ("assistant", ASSISTANT)]
    cases: dict[str, Callable[[], object]] = {
        "floor": lambda: raw.render(**VALUES),
        "plain": lambda: plain.render(**VALUES),
        "chat": lambda: chat.render(**VALUES),
        "chat per call": lambda: ChatTemplate(pairs).render(**VALUES),
    }
    lc = "langchain-core"
    if installed("langchain_core"):
        from langchain_core.prompts import ChatPromptTemplate, PromptTemplate

        lc_pairs = [("system", SYSTEM), ("human", USER), ("ai", ASSISTANT)]
        lc_plain = PromptTemplate.from_template(RAW_TEXT, template_format="jinja2")
        lc_chat = ChatPromptTemplate.from_messages(lc_pairs, template_format="jinja2")
        # the same texts in LangChain's default f-string syntax ({name}): its fastest way to format
        f_pairs = [(role, re.sub(r"\{\{ (\w+) \}\}", r"{\1}", text)) for role, text in lc_pairs]
        f_plain = PromptTemplate.from_template(re.sub(r"\{\{ (\w+) \}\}", r"{\1}", RAW_TEXT))
        f_chat = ChatPromptTemplate.from_messages(f_pairs)
        cases |= {
            f"{lc} jinja2 plain": lambda: lc_plain.format(**VALUES),
            f"{lc} f-string plain": lambda: f_plain.format(**VALUES),
            f"{lc} jinja2 chat": lambda: lc_chat.format_messages(**VALUES),
            f"{lc} f-string chat": lambda: f_chat.format_messages(**VALUES),
            f"{lc} f-string chat per call": lambda: ChatPromptTemplate.from_messages(f_pairs).format_messages(**VALUES),
        }
    t = measure(cases, rounds=5 if quick else 15, statistic="median")

    def peers(kind: str) -> dict[str, float | str | None]:
        if not installed("langchain_core"):
            return {lc: None}
        found = {
            f"{lc} ({how})": t[f"{lc} {how} {kind}"] for how in ("jinja2", "f-string") if f"{lc} {how} {kind}" in t
        }
        return found or {lc: "no equivalent"}

    size = "3 messages, 5 variables, 0.4 KB out"
    return [
        Row("chat template render (stored template)", size, t["chat"], t["floor"], "jinja2 render", peers("chat")),
        Row("text template render (stored template)", size, t["plain"], t["floor"], "jinja2 render", peers("plain")),
        Row(
            "chat template built and rendered in the call",
            size,
            t["chat per call"],
            t["floor"],
            "jinja2 render, compiled once",
            peers("chat per call"),
            note="identical sources compile once per process; jinja2 compiling in every call takes ~50x the floor",
        ),
    ]


def main() -> None:
    raw = jinja2.Environment().from_string(RAW_TEXT)  # the floor: no escaping, no sandbox
    raw_sandboxed = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined).from_string(RAW_TEXT)
    chat = ChatTemplate.from_source(ROLE_SOURCE)
    pairs = ChatTemplate([("system", SYSTEM), ("user", USER), ("assistant", ASSISTANT)])
    plain = Template(RAW_TEXT)
    assert [m.role for m in chat.render(**VALUES)] == ["system", "user", "assistant"]
    assert chat.render(**VALUES) == pairs.render(**VALUES)

    cases: dict[str, Callable[[], object]] = {
        "jinja2.Template.render (floor)": lambda: raw.render(**VALUES),
        "jinja2 immutable sandbox render": lambda: raw_sandboxed.render(**VALUES),
        "promptkit Template.render": lambda: plain.render(**VALUES),
        "promptkit ChatTemplate.render (role blocks)": lambda: chat.render(**VALUES),
        "promptkit ChatTemplate.render (pairs)": lambda: pairs.render(**VALUES),
        # built inside the call, as app code often does: identical sources compile once per process
        "built per call: Template(src).render": lambda: Template(RAW_TEXT).render(**VALUES),
        "built per call: ChatTemplate.from_source(src).render": lambda: ChatTemplate.from_source(ROLE_SOURCE).render(
            **VALUES
        ),
        "built per call: ChatTemplate(pairs).render": lambda: ChatTemplate(
            [("system", SYSTEM), ("user", USER), ("assistant", ASSISTANT)]
        ).render(**VALUES),
    }
    results = measure(cases)
    peer_names: list[str] = []
    try:
        from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
    except ImportError:
        print("langchain-core not installed: peer rows skipped")
    else:
        lc = PromptTemplate.from_template(RAW_TEXT, template_format="jinja2")
        lc_chat = ChatPromptTemplate.from_messages(
            [("system", SYSTEM), ("human", USER), ("ai", ASSISTANT)], template_format="jinja2"
        )
        peers: dict[str, Callable[[], object]] = {
            "langchain PromptTemplate(jinja2).format": lambda: lc.format(**VALUES),
            "langchain ChatPromptTemplate(jinja2).format_messages": lambda: lc_chat.format_messages(**VALUES),
        }
        results.update(measure(peers, rounds=5, budget=0.05))
        peer_names = list(peers)
    floor = results["jinja2.Template.render (floor)"]
    rows = list(results.items())

    chat_time = results["promptkit ChatTemplate.render (role blocks)"]
    print(f"{'case':<55} {'per call':>12} {'x floor':>8} {'peer / chat':>12}")
    for name, seconds in rows:
        vs_chat = f"{seconds / chat_time:10.1f}x" if name.startswith("langchain") else ""
        print(f"{name:<55} {_us(seconds):>12} {seconds / floor:7.2f}x {vs_chat:>12}")
    ratio = chat_time / floor
    print(f"\ntarget: ChatTemplate <= 1.5x floor -> {ratio:.2f}x {'OK' if ratio <= 1.5 else 'MISSED'}")
    stored = {
        "built per call: Template(src).render": "promptkit Template.render",
        "built per call: ChatTemplate.from_source(src).render": "promptkit ChatTemplate.render (role blocks)",
        "built per call: ChatTemplate(pairs).render": "promptkit ChatTemplate.render (pairs)",
    }
    for built, kept in stored.items():
        ratio = results[built] / results[kept]
        verdict = "OK" if ratio <= 2 else "MISSED"
        print(f"target: {built.split(': ')[1]} <= 2x the stored template -> {ratio:.2f}x {verdict}")
    if peer_names:
        best_peer = min(results[name] for name in peer_names)
        speedup = best_peer / chat_time
        print(f"target: >= 50x faster than langchain -> {speedup:.0f}x {'OK' if speedup >= 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
