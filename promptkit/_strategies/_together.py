"""Several plans run in lockstep: each round, every plan's next call goes out in one group.

This is how self-consistency samples any strategy (direct, chain of thought, a user's own) ``n``
times concurrently without knowing what it does: plan ``i``'s calls are tagged with sample ``i``,
its replies are routed back to it, and a plan that fails (a backend error, or a reply that did
not parse after repair) ends with that error instead of ending the others.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

from .._errors import BackendError, ConfigurationError, ParseError
from ._base import Call, Outcome, Plan, Reply

__all__ = ["Ended", "together"]

Ended = Outcome[Any] | BackendError | ParseError
"""How one plan of a group ended: its outcome, or the error that ended it."""


def together(
    plans: Sequence[Plan], tag: Callable[[int, Call], Call]
) -> Generator[list[Call], list[Reply], list[Ended]]:
    """Run ``plans`` side by side; returns how each ended, in order. ``tag`` labels plan i's calls."""
    ends: list[Ended | None] = [None] * len(plans)
    waiting: dict[int, Call | Sequence[Call]] = {}

    def advance(i: int, reply: Any = None, error: BackendError | None = None) -> None:
        try:
            wanted = plans[i].throw(error) if error is not None else plans[i].send(reply)
        except StopIteration as stop:
            if not isinstance(stop.value, Outcome):
                raise ConfigurationError(f"a strategy's plan must return an Outcome, not {stop.value!r}") from None
            ends[i] = stop.value
        except (BackendError, ParseError) as err:
            ends[i] = err
        else:
            waiting[i] = wanted

    try:
        for i in range(len(plans)):
            advance(i)
        while waiting:
            rounds = sorted(waiting.items())
            waiting.clear()
            calls: list[Call] = []
            spans: list[tuple[int, int, int | None]] = []  # plan, first call, group size (None: one call)
            for i, wanted in rounds:
                if isinstance(wanted, Call):
                    spans.append((i, len(calls), None))
                    calls.append(tag(i, wanted))
                else:
                    group = [tag(i, call) for call in wanted]
                    spans.append((i, len(calls), len(group)))
                    calls.extend(group)
            replies = yield calls
            for i, first, size in spans:
                if size is None:
                    reply = replies[first]
                    if isinstance(reply, BackendError):
                        advance(i, error=reply)
                    else:
                        advance(i, reply)
                else:
                    advance(i, list(replies[first : first + size]))
    finally:
        for plan in plans:
            plan.close()
    finished: list[Ended] = [end for end in ends if end is not None]
    return finished
