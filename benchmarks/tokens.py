"""Token counting costs: first load, cached and uncached counts, messages, fitting a budget.

Run: python benchmarks/tokens.py   (needs quicktok-v1 to fill a temporary tiktoken cache offline)

Each row gives the median time and its ratio to a floor (the cheapest way to get the same
answer, or the part promptkit cannot avoid) and to tiktoken used directly, the peer.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from _suite import Row

from promptkit._tiktoken_files import provision_tiktoken_cache


def _median(fn: Callable[[], object], *, repeat: int = 7, number: int = 1) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def _fresh_process(code: str, *, repeat: int = 5) -> float:
    """Median seconds of ``code`` timed inside a fresh interpreter (imports excluded)."""
    times = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(out.stdout))
    return statistics.median(times)


def _fmt(seconds: float) -> str:
    if seconds >= 0.1:
        return f"{seconds:8.3f} s "
    if seconds >= 1e-4:
        return f"{seconds * 1e3:8.3f} ms"
    return f"{seconds * 1e6:8.3f} us"


def measure_rows(quick: bool = False) -> list[tuple[str, float, float, float]]:
    """(case, promptkit, cheapest floor, tiktoken directly) median seconds for each case."""
    cache = tempfile.mkdtemp(prefix="tiktoken-bench-")
    provision_tiktoken_cache(cache)
    os.environ["TIKTOKEN_CACHE_DIR"] = cache
    os.environ["PROMPTKIT_OFFLINE"] = "1"

    import tiktoken

    from promptkit._tokens import count_tokens, fit_to_budget, get_tokenizer

    rows: list[tuple[str, float, float, float]] = []

    # First load of o200k_base in a fresh process (the import itself is excluded).
    timer = "import time, {imp}; t = time.perf_counter(); {call}; print(time.perf_counter() - t)"
    # The floor is tiktoken's own load (promptkit adds importing tiktoken and a hash check).
    fresh = 3 if quick else 9
    peer = _fresh_process(timer.format(imp="tiktoken", call="tiktoken.get_encoding('o200k_base')"), repeat=fresh)
    ours = _fresh_process(
        timer.format(imp="promptkit._tokens as t_", call="t_.count_tokens('hi', model='gpt-4o')"), repeat=fresh
    )
    rows.append(("first load of o200k_base (fresh process)", ours, peer, peer))

    enc = tiktoken.get_encoding("o200k_base")
    get_tokenizer(model="gpt-4o")
    example = (
        "Q: A train leaves at 9:40 and the trip takes 2 h 35 min. When does it arrive?\n"
        "A: 9:40 plus 2 h is 11:40; plus 35 min is 12:15. The answer is 12:15."
    )
    lookup = {example: 42}
    count_tokens(example, model="gpt-4o")
    ours = _median(lambda: count_tokens(example, model="gpt-4o"), number=20000)
    floor = _median(lambda: lookup[example], number=20000)
    peer = _median(lambda: len(enc.encode_ordinary(example)), number=2000)
    rows.append(("count a few-shot example again (cached)", ours, floor, peer))

    tokenizer = get_tokenizer(model="gpt-4o")
    ours = _median(lambda: (tokenizer.cache_clear(), tokenizer.count(example)), number=2000)
    rows.append(("count a new few-shot example (uncached)", ours, peer, peer))

    messages = [("system", "You are terse."), ("user", example), ("assistant", "12:15"), ("user", example)]
    ours = _median(lambda: count_tokens(messages, model="gpt-4o"), number=5000)
    floor = _median(lambda: sum(lookup[example] for _ in messages), number=5000)
    peer = _median(
        lambda: 3 + sum(3 + len(enc.encode_ordinary(r)) + len(enc.encode_ordinary(c)) for r, c in messages),
        number=1000,
    )
    rows.append(("count 4 chat messages (cached parts)", ours, floor, peer))

    doc = " ".join(f"Paragraph {i}: the committee discussed item {i % 13} at length." for i in range(12000))

    def render(text: str) -> str:
        return f"Summarise this report:\n<report>\n{text}\n</report>"

    renders = 0

    def counting_render(text: str) -> str:
        nonlocal renders
        renders += 1
        return render(text)

    fit = fit_to_budget(counting_render, doc, budget=8000, model="gpt-4o", cut="middle", marker="\n[...]\n")
    per_fit = renders
    ours = _median(lambda: fit_to_budget(render, doc, budget=8000, model="gpt-4o", cut="middle"), repeat=5)
    floor = _median(lambda: len(enc.encode_ordinary(render(doc))), repeat=5)
    # the peer: the usual hand-written way, encode once, slice, decode, render, re-count
    peer = _median(lambda: len(enc.encode_ordinary(render(enc.decode(enc.encode_ordinary(doc)[:7980])))), repeat=5)
    rows.append((f"fit a {fit.original_tokens}-token doc into 8000 ({per_fit} renders)", ours, floor, peer))
    return rows


def run(quick: bool) -> list[Row]:
    """The suite's rows: each case against tiktoken used directly (the library underneath)."""
    sizes = ["o200k_base", "1 example, 40 tokens", "1 example, 40 tokens", "4 messages", "167k-token doc, budget 8000"]
    out = []
    for (name, ours, _cheapest, tiktoken_time), size in zip(measure_rows(quick), sizes, strict=True):
        out.append(
            Row(name.split(" (")[0] if name.startswith("fit") else name, size, ours, tiktoken_time, "tiktoken directly")
        )
    return out


def main() -> None:
    rows = measure_rows()
    import tiktoken

    print(f"tiktoken {tiktoken.__version__}, Python {sys.version.split()[0]}")
    print(f"{'case':52} {'promptkit':>11} {'floor':>11} {'x floor':>8} {'tiktoken':>11} {'x tiktoken':>10}")
    for name, ours, floor, peer in rows:
        print(f"{name:52} {_fmt(ours)} {_fmt(floor)} {ours / floor:8.2f} {_fmt(peer)} {ours / peer:10.2f}")


if __name__ == "__main__":
    main()
