"""Rendering cost of promptkit templates against raw Jinja2 (the floor) and LangChain (a peer).

Run: python benchmarks/templates.py   (langchain-core is optional: pip install -r benchmarks/requirements.txt)

The case the target is set on: a precompiled chat template of 3 messages with 5 variables.
The floor is ``jinja2.Template.render`` of the same text, compiled once, without the sandbox;
promptkit should cost at most 1.5x that. LangChain's ``PromptTemplate(template_format="jinja2")``
builds a sandboxed environment and recompiles on every ``format`` call.
"""

from __future__ import annotations

from collections.abc import Callable

import jinja2
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
