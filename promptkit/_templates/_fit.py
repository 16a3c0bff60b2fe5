"""Fitting a whole rendered prompt into a token budget, lowest priority first.

A fitted render runs the template in the fit environment with :data:`FITTING` set: every
``{% part %}`` block, every value given a :class:`~promptkit.Part` and the examples then carry
markers (built on the role markers' nonce, so no value can forge one). The marked text is parsed
once into a tree of fixed text, role markers and parts; each part is counted on its own (counts
and token ids are cached by text, so an unchanged part costs a dictionary lookup). Parts are
then dropped or cut in priority order on those counts; the result is assembled into messages
exactly as an ordinary render builds them, counted for real, and corrected until the real count
is within the limit. Cuts fall on token boundaries decoded to whole characters, inside one text
part (never across a role marker); a history loses whole turns and the examples whole examples.
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jinja2 import nodes

from .._errors import ConfigurationError, TemplateSecurityError, TokenBudgetError
from .._fitting import Fit, FitReport, FitRow, Part
from .._messages import Message, coerce_messages
from .._tokens import REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE
from ._compile import compile_source, render_jinja
from ._sandbox import CLOSE, END, FITTING, MARK, OPEN, PART_CLOSE, PART_OPEN, SPLICE, UNIT, PartExtension, tagged

if TYPE_CHECKING:
    from .._tokens import Tokenizer
    from ._sandbox import PromptEnvironment
    from ._template import _TemplateBase

__all__ = ["Extra", "fit_template", "part_spec", "tag_units"]

_DROP = "drop"
_MAX_ROUNDS = 64  # corrections after the first plan; each is one count of the fitted prompt


# -- cached counts --------------------------------------------------------------------------------
class _Cache:
    """Least recently used ``text -> value``, bounded by the characters of the texts it keeps
    (shared by the threads of a batch, hence the lock; values are computed outside it)."""

    __slots__ = ("chars", "items", "limit", "lock")

    def __init__(self, limit: int) -> None:
        self.items: OrderedDict[str, Any] = OrderedDict()
        self.chars = 0
        self.limit = limit
        self.lock = threading.Lock()

    def get(self, text: str, make: Callable[[str], Any]) -> Any:
        items = self.items
        with self.lock:
            value = items.get(text)
            if value is not None:
                items.move_to_end(text)
                return value
        value = make(text)
        if len(text) <= self.limit:
            with self.lock:
                if text not in items:
                    items[text] = value
                    self.chars += len(text)
                while self.chars > self.limit:
                    old, _ = items.popitem(last=False)
                    self.chars -= len(old)
        return value


class _Counter:
    """Counts and token ids of texts for one tokenizer, cached across fits."""

    __slots__ = ("_counts", "_ids", "tokenizer")

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._counts = _Cache(32_000_000)
        self._ids = _Cache(8_000_000)

    def count(self, text: str) -> int:
        if not text:
            return 0
        if len(text) <= 4096:
            return self.tokenizer.count(text)
        n: int = self._counts.get(text, self.tokenizer.count)
        return n

    def ids(self, text: str) -> list[int]:
        got: list[int] = self._ids.get(text, self.tokenizer.encode)
        return got

    def message(self, message: Message) -> int:
        """A message's tokens in a request (its framing included, not the reply priming)."""
        if isinstance(message.content, str):
            return TOKENS_PER_MESSAGE + self.count(message.role) + self.count(message.content)
        return self.tokenizer.count_messages([message]) - REPLY_PRIMING_TOKENS

    def messages(self, messages: Sequence[Message]) -> int:
        return REPLY_PRIMING_TOKENS + sum(self.message(m) for m in messages)


@functools.cache
def _counter(tokenizer: Tokenizer) -> _Counter:
    return _Counter(tokenizer)


# -- the parsed tree ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Marker:
    raw: str
    kind: str
    role: str | None = None


@dataclass(eq=False, slots=True)
class _Node:
    """One part: ``kind`` is ``text`` (cuttable), ``composite`` (other parts or messages inside),
    ``units`` (examples as text), ``turns`` (a history) or ``extra`` (chat examples)."""

    name: str
    part: Part
    position: int
    parent: _Node | None
    children: list[str | _Marker | _Node] = field(default_factory=list)
    kind: str = "text"
    units: list[Any] = field(default_factory=list)
    unit_tokens: list[int] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    separator: str = ""
    splice: _Marker | None = None
    variable: str = ""
    render: Callable[[Sequence[int]], list[Message]] | None = None
    text: str = ""
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class Extra:
    """A part a prompt adds after rendering (examples shown as chat turns).

    ``units`` are its pieces (one per example), ``order`` the order they go in (worst first), and
    ``render`` builds the messages of the kept pieces (given in their original order).
    """

    name: str
    part: Part
    units: int
    order: Sequence[int]
    render: Callable[[Sequence[int]], list[Message]]


def part_spec(name: str, part: Part, extra: Mapping[str, Any] | None = None) -> str:
    """The JSON options a part's opening marker carries."""
    fields: list[Any] = [name, part.priority, part.max_tokens, part.truncate, part.marker, part.fallback]
    if extra:
        fields.append(dict(extra))
    return json.dumps(fields)


def tag_units(name: str, part: Part, units: Sequence[str], separator: str, order: Sequence[int]) -> str:
    """A value printed as ``separator.join(units)`` that fits as a part losing whole units."""
    spec = part_spec(name, part, {"units": True, "separator": separator, "order": list(order)})
    return tagged(separator.join(units), spec, tuple(units), separator)


@functools.lru_cache(maxsize=256)
def _static_part_names(env: PromptEnvironment, source: str) -> frozenset[str]:
    tree = env.parse(source)
    names = set()
    for call in tree.find_all(nodes.Call):
        target = call.node
        if (
            isinstance(target, nodes.ExtensionAttribute)
            and target.identifier == PartExtension.identifier
            and target.name == "_open"
            and call.args
            and isinstance(call.args[0], nodes.Const)
        ):
            names.add(str(call.args[0].value))
    return frozenset(names)


def _turns(messages: Sequence[Message]) -> list[list[Message]]:
    """Messages in turns: each user message with the replies after it (what comes before the
    first user message is a turn of its own)."""
    turns: list[list[Message]] = []
    for message in messages:
        if message.role == "user" or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


class _Parser:
    """The marked text as a tree; every part a :class:`_Node` in the order it opened."""

    def __init__(self, config: Mapping[str, Part], context: Mapping[str, Any], counter: _Counter) -> None:
        self.config = config
        self.context = context
        self.counter = counter
        self.nodes: list[_Node] = []

    def parse(self, text: str) -> list[str | _Marker | _Node]:
        root: list[str | _Marker | _Node] = []
        stack: list[_Node] = []

        def add(child: str | _Marker | _Node) -> None:
            (stack[-1].children if stack else root).append(child)

        pieces = text.split(MARK)
        if pieces[0]:
            add(pieces[0])
        for piece in pieces[1:]:
            kind = piece[:1]
            if kind in (OPEN, SPLICE, PART_OPEN):
                tag, _, rest = piece.partition(END)
                if kind == PART_OPEN:
                    node = self._open(json.loads(tag[1:]), stack[-1] if stack else None)
                    add(node)
                    stack.append(node)
                elif kind == OPEN:
                    add(_Marker(MARK + tag + END, OPEN, tag[1:]))
                else:
                    self._splice(_Marker(MARK + tag + END, SPLICE), stack[-1] if stack else None, add)
            elif kind in (CLOSE, PART_CLOSE, UNIT):
                rest = piece[2:]
                if kind == CLOSE:
                    add(_Marker(MARK + CLOSE + END, CLOSE))
                elif kind == PART_CLOSE:
                    if not stack:
                        raise TemplateSecurityError("unbalanced part marker")
                    self._close(stack.pop())
                else:
                    if not stack or stack[-1].kind != "units":
                        raise TemplateSecurityError("misplaced unit marker")
                    stack[-1].children.append(_Marker("", UNIT))
            else:
                raise TemplateSecurityError("unknown marker in a fitted render")
            if rest:
                add(rest)
        if stack:
            raise TemplateSecurityError("unbalanced part marker")
        return root

    def _open(self, spec: list[Any], parent: _Node | None) -> _Node:
        name, priority, max_tokens, truncate, marker, fallback = spec[:6]
        extra = spec[6] if len(spec) > 6 else {}
        part = self.config.get(name)
        if part is None or extra.get("variable"):
            part = Part(priority, max_tokens=max_tokens, truncate=truncate, marker=marker, fallback=fallback)
        node = _Node(name=name, part=part, position=len(self.nodes), parent=parent)
        if extra.get("units"):
            node.kind = "units"
            node.separator = extra["separator"]
            node.order = list(extra["order"])
        self.nodes.append(node)
        return node

    def _close(self, node: _Node) -> None:
        count = self.counter.count
        if node.kind == "units":
            units: list[str] = []
            current: list[str] = []
            for child in node.children:
                if isinstance(child, _Marker):
                    units.append("".join(current))
                    current = []
                elif isinstance(child, str):
                    current.append(child)
            units.append("".join(current))
            node.units = units
            node.children = []
            sep = count(node.separator)
            node.unit_tokens = [count(u) + (sep if i else 0) for i, u in enumerate(units)]
            node.tokens = sum(node.unit_tokens)
        elif all(isinstance(c, str) for c in node.children):
            node.text = "".join(c for c in node.children if isinstance(c, str))
            node.children = []
            node.tokens = count(node.text)
        else:
            node.kind = "composite"
            if node.part.truncate is not None:
                raise ConfigurationError(
                    f"part {node.name!r} holds other parts or messages, so it can only be dropped whole; "
                    "remove its truncate option (or put the part inside the message)"
                )
            if node.part.fallback and any(isinstance(c, _Marker) and c.kind == OPEN for c in node.children):
                raise ConfigurationError(
                    f"part {node.name!r} holds whole messages, so it cannot have a fallback text; "
                    "put a fallback on a part inside a message"
                )
            node.tokens = self.estimate_children(node.children, {})

    def _splice(self, marker: _Marker, parent: _Node | None, add: Callable[[str | _Marker | _Node], None]) -> None:
        spec = marker.raw[len(MARK) + 1 : -len(END)]
        name = spec.rstrip("?")
        part = self.config.get(name)
        if part is None:
            add(marker)
            return
        if part.marker or part.fallback or part.truncate is not None:
            raise ConfigurationError(
                f"the history {name!r} loses whole turns: marker, fallback and truncate do not apply to it"
            )
        value = self.context.get(name)
        messages = list(coerce_messages(value)) if value else []
        node = _Node(name=name, part=part, position=len(self.nodes), parent=parent, kind="turns")
        node.splice = marker
        node.variable = name
        node.units = _turns(messages)
        node.unit_tokens = [sum(self.counter.message(m) for m in turn) for turn in node.units]
        node.tokens = sum(node.unit_tokens)
        indices = list(range(len(node.units)))
        node.order = indices if part.drop == "oldest" else indices[::-1]
        self.nodes.append(node)
        add(node)

    def estimate_children(self, children: Sequence[str | _Marker | _Node], state: Mapping[_Node, Any]) -> int:
        total = 0
        for child in children:
            if isinstance(child, str):
                total += self.counter.count(child)
            elif isinstance(child, _Marker):
                if child.kind == OPEN and child.role is not None:
                    total += TOKENS_PER_MESSAGE + self.counter.count(child.role)
                elif child.kind == SPLICE:
                    value = self.context.get(child.raw[len(MARK) + 1 : -len(END)].rstrip("?"))
                    if value:
                        total += sum(self.counter.message(m) for m in coerce_messages(value))
            else:
                total += self.estimate(child, state)
        return total

    def estimate(self, node: _Node, state: Mapping[_Node, Any]) -> int:
        st = state.get(node)
        if st == _DROP:
            return self.counter.count(node.part.fallback)
        if node.kind == "text":
            if st is None:
                return node.tokens
            return int(st) + self.counter.count(node.part.marker)
        if node.kind == "composite":
            return self.estimate_children(node.children, state)
        kept = range(len(node.units)) if st is None else st
        return sum(node.unit_tokens[i] for i in kept)


# -- cutting a text -------------------------------------------------------------------------------
def _cut(counter: _Counter, node: _Node, keep: int) -> str:
    """The node's text keeping ``keep`` tokens (whole characters only), with its marker."""
    ids = counter.ids(node.text)
    n = len(ids)
    marker = node.part.marker
    decode = counter.tokenizer.decode
    side = node.part.truncate or "end"
    if keep >= n:
        return node.text
    if side == "end":
        return decode(ids[:keep]) + marker
    if side == "start":
        return marker + (decode(ids[n - keep :]) if keep else "")
    head = decode(ids[: (keep + 1) // 2])
    tail = decode(ids[n - keep // 2 :]) if keep // 2 else ""
    return head + marker + tail


# -- the fit --------------------------------------------------------------------------------------
class _Fitter:
    def __init__(
        self,
        template: _TemplateBase,
        context: Mapping[str, Any],
        parser: _Parser,
        root: list[str | _Marker | _Node],
        finish: Callable[[list[Message], Mapping[str, tuple[int, ...]]], list[Message]] | None,
    ) -> None:
        self.template = template
        self.context = context
        self.parser = parser
        self.root = root
        self.finish = finish
        self.counter = parser.counter

    def removed(self, node: _Node, state: Mapping[_Node, Any]) -> bool:
        """Whether a part is gone because a part around it was dropped."""
        parent = node.parent
        while parent is not None:
            if state.get(parent) == _DROP:
                return True
            parent = parent.parent
        return False

    def build(self, state: Mapping[_Node, Any]) -> list[Message]:
        out: list[str] = []
        spliced: dict[str, list[Message]] = {}
        kept: dict[str, tuple[int, ...]] = {}
        self._assemble(self.root, state, out, spliced)
        for node in self.parser.nodes:
            if node.kind == "extra" and not self.removed(node, state):
                st = state.get(node)
                kept[node.name] = () if st == _DROP else tuple(range(len(node.units))) if st is None else tuple(st)
        text = "".join(out)
        # a chat template cuts the text at its role markers (ChatTemplate._build); a plain one is
        # one user message. Looked up, not imported: _chat imports _template, which imports this.
        split: Callable[[str, Mapping[str, Any]], list[Message]] | None = getattr(self.template, "_build", None)
        if split is not None:
            messages = split(text, {**self.context, **spliced} if spliced else self.context)
        else:
            messages = [Message("user", text)]
        return self.finish(messages, kept) if self.finish is not None else messages

    def _assemble(
        self,
        children: Sequence[str | _Marker | _Node],
        state: Mapping[_Node, Any],
        out: list[str],
        spliced: dict[str, list[Message]],
    ) -> None:
        for child in children:
            if isinstance(child, str):
                out.append(child)
                continue
            if isinstance(child, _Marker):
                out.append(child.raw)
                continue
            st = state.get(child)
            if st == _DROP:
                out.append(child.part.fallback)
            elif child.kind == "text":
                out.append(child.text if st is None else _cut(self.counter, child, int(st)))
            elif child.kind == "units":
                kept = range(len(child.units)) if st is None else sorted(st)
                out.append(child.separator.join(child.units[i] for i in kept))
            elif child.kind == "turns":
                assert child.splice is not None
                kept = range(len(child.units)) if st is None else sorted(st)
                spliced[child.variable] = [m for i in kept for m in child.units[i]]
                out.append(child.splice.raw)
            elif child.kind == "composite":
                self._assemble(child.children, state, out, spliced)

    def measure(self, state: Mapping[_Node, Any]) -> tuple[int, list[Message]]:
        messages = self.build(state)
        return self.counter.messages(messages), messages

    # -- shrinking one part ------------------------------------------------------------------------
    def shrink(self, node: _Node, excess: int, state: dict[_Node, Any]) -> bool:
        """Take about ``excess`` tokens off ``node``; True once it has nothing left to give."""
        st = state.get(node)
        if st == _DROP:
            return True
        if node.kind == "text" and node.part.truncate is not None:
            current = node.tokens if st is None else int(st) + self.counter.count(node.part.marker)
            keep = current - excess - self.counter.count(node.part.marker)
            if st is not None:
                keep = min(keep, int(st) - 1)
            if keep <= 0:
                state[node] = _DROP
                return True
            state[node] = min(keep, node.tokens - 1)
            return False
        if node.kind in ("units", "turns", "extra"):
            kept = list(range(len(node.units))) if st is None else list(st)
            saved = 0
            for i in node.order:
                if saved >= excess or not kept:
                    break
                if i in kept:
                    kept.remove(i)
                    saved += node.unit_tokens[i]
            if not kept:
                state[node] = _DROP
                return True
            state[node] = tuple(kept)
            return False
        state[node] = _DROP
        return True

    def grow(
        self, node: _Node, state: dict[_Node, Any], limit: int, real: int, messages: list[Message]
    ) -> tuple[int, list[Message]]:
        """Give back to the last part cut what the measured count leaves room for."""
        st = state.get(node)
        if node.kind == "text" and isinstance(st, int):
            lo, hi = st, node.tokens
            guess = lo + (limit - real)
            for _ in range(8):
                if hi - lo <= 1 or real >= limit:
                    break
                if not lo < guess < hi:
                    guess = (lo + hi) // 2
                state[node] = guess
                count, built = self.measure(state)
                if count <= limit:
                    lo, real, messages = guess, count, built
                    guess += limit - count
                else:
                    hi = guess
                    guess -= count - limit
            state[node] = lo
        elif node.kind in ("units", "turns", "extra") and isinstance(st, tuple):
            kept = list(st)
            for i in reversed(node.order):
                if i in kept:
                    continue
                if real + node.unit_tokens[i] > limit + 2:
                    break
                state[node] = (*kept, i)
                count, built = self.measure(state)
                if count > limit:
                    state[node] = tuple(kept)
                    break
                kept.append(i)
                real, messages = count, built
        return real, messages


def _values(context: Mapping[str, Any], config: Mapping[str, Part]) -> dict[str, Any]:
    """The context with the text values given a :class:`Part` (a string, or a list of strings
    whose items each become a part) printed as parts. A list of messages is a history."""
    out = dict(context)
    for name, part in config.items():
        if name not in out:
            continue
        value = out[name]
        if isinstance(value, str) and not hasattr(value, "spec"):
            out[name] = tagged(value, part_spec(name, part, {"variable": True}))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            out[name] = type(value)(
                tagged(v, part_spec(f"{name}[{i}]", part, {"variable": True})) for i, v in enumerate(value)
            )
    return out


def fit_template(
    template: _TemplateBase,
    values: Mapping[str, Any],
    *,
    fit: Fit,
    reserve: int,
    tokenizer: Tokenizer,
    extras: Sequence[Extra] = (),
    known: frozenset[str] = frozenset(),
    finish: Callable[[list[Message], Mapping[str, tuple[int, ...]]], list[Message]] | None = None,
) -> tuple[FitReport, dict[str, tuple[int, ...]]]:
    """Render ``template`` with ``values`` into ``fit.budget - reserve`` tokens, by priority.

    ``extras`` are parts added after rendering (chat examples) that ``finish`` places, given the
    pieces kept of each; ``known`` are more names ``fit.parts`` may use. Returns the report (its
    ``messages`` are what to send) and, for each part made of units, the indices it kept.
    """
    limit = fit.budget - reserve
    if limit < 0:
        raise ConfigurationError(f"reserve={reserve} is more than the budget of {fit.budget} tokens")
    env = template._env
    names = _static_part_names(env, template.source)
    unknown = sorted(set(fit.parts) - template._all_variables - names - known - {e.name for e in extras})
    if unknown:
        raise ConfigurationError(
            f"Fit.parts names {', '.join(map(repr, unknown))}, which the template neither prints nor marks "
            f"with {{% part %}}; known: {', '.join(sorted(template._all_variables | names | known)) or 'none'}"
        )
    context = template._context(values)
    counter = _counter(tokenizer)
    marked = _values(context, fit.parts)
    fit_env = env.fit_environment()
    compiled = compile_source(fit_env, template.source, template.limits, template._locate)
    token = FITTING.set(True)
    try:
        text = render_jinja(compiled, marked, template.limits, template._locate)
    finally:
        FITTING.reset(token)
    parser = _Parser(fit.parts, context, counter)
    root = parser.parse(text)
    for extra in extras:
        node = _Node(name=extra.name, part=extra.part, position=len(parser.nodes), parent=None, kind="extra")
        node.units = list(range(extra.units))
        node.order = list(extra.order)
        node.render = extra.render
        node.unit_tokens = [sum(counter.message(m) for m in extra.render([i])) for i in range(extra.units)]
        node.tokens = sum(node.unit_tokens)
        parser.nodes.append(node)
    _rename(parser.nodes)
    fitter = _Fitter(template, context, parser, root, finish)
    return _run(fitter, fit, reserve, limit)


def _rename(found: list[_Node]) -> None:
    """Names that occur more than once get their occurrence: ``doc[0]``, ``doc[1]``, ..."""
    seen: dict[str, int] = {}
    for node in found:
        seen[node.name] = seen.get(node.name, 0) + 1
    index: dict[str, int] = {}
    for node in found:
        if seen[node.name] > 1:
            i = index.get(node.name, 0)
            index[node.name] = i + 1
            node.name = f"{node.name}[{i}]"


def _run(fitter: _Fitter, fit: Fit, reserve: int, limit: int) -> tuple[FitReport, dict[str, tuple[int, ...]]]:
    parser = fitter.parser
    found = parser.nodes
    state, reasons = _capped(fitter)
    before, messages = fitter.measure({})
    real = before
    if state:
        real, messages = fitter.measure(state)
    order = sorted((n for n in found if n.part.priority is not None), key=lambda n: (n.part.priority, -n.position))
    touched: list[_Node] = []
    i = 0
    rounds = 0
    while real > limit:
        excess = real - limit
        # plan on the parts' own counts, then count the result for real
        while excess > 0 and i < len(order):
            node = order[i]
            if fitter.removed(node, state) or state.get(node) == _DROP:
                i += 1
                continue
            was = parser.estimate(node, state)
            exhausted = fitter.shrink(node, excess, state)
            reasons[node] = "budget"
            if not touched or touched[-1] is not node:
                touched.append(node)
            excess -= was - parser.estimate(node, state)
            if exhausted:
                i += 1
        if excess > 0 and i >= len(order):
            real, messages = fitter.measure(state)
            if real > limit:
                raise _budget_error(fitter, state=state, fit=fit, reserve=reserve, limit=limit, real=real)
            break
        real, messages = fitter.measure(state)
        rounds += 1
        if rounds > _MAX_ROUNDS:  # pragma: no cover - counts are nearly additive; a guard, not a path
            raise TokenBudgetError(f"could not fit the prompt into {limit} tokens", budget=limit, minimum=real)
    if touched and real < limit:
        real, messages = fitter.grow(touched[-1], state, limit, real, messages)
    rows = _rows(fitter, state, reasons)
    kept = {
        n.name: tuple(range(len(n.units)))
        if state.get(n) is None
        else ()
        if state[n] == _DROP
        else tuple(sorted(state[n]))
        for n in found
        if n.kind in ("units", "extra")
    }
    for n in found:
        if n.kind in ("units", "extra") and fitter.removed(n, state):
            kept[n.name] = ()
    report = FitReport(
        budget=fit.budget,
        reserve=reserve,
        tokens=real,
        tokens_before=before,
        rows=rows,
        encoding=fitter.counter.tokenizer.name,
        exact=fitter.counter.tokenizer.exact,
        messages=tuple(messages),
    )
    return report, kept


def _capped(fitter: _Fitter) -> tuple[dict[_Node, Any], dict[_Node, str]]:
    """Each part cut to its ``max_tokens``, whatever the budget."""
    state: dict[_Node, Any] = {}
    reasons: dict[_Node, str] = {}
    for node in fitter.parser.nodes:
        cap = node.part.max_tokens
        if cap is not None and node.tokens > cap:
            reasons[node] = "max_tokens"
            if node.kind == "text":
                keep = cap - fitter.counter.count(node.part.marker)
                state[node] = keep if keep > 0 else _DROP
            elif node.kind in ("units", "turns", "extra"):
                fitter.shrink(node, node.tokens - cap, state)
            else:
                state[node] = _DROP
    return state, reasons


def _rows(fitter: _Fitter, state: Mapping[_Node, Any], reasons: Mapping[_Node, str]) -> tuple[FitRow, ...]:
    rows = []
    counter = fitter.counter
    for node in fitter.parser.nodes:
        st = state.get(node)
        units = None
        if node.kind in ("units", "turns", "extra"):
            n = len(node.units)
            after_units = n if st is None else 0 if st == _DROP else len(st)
            units = (n, 0 if fitter.removed(node, state) else after_units)
        if fitter.removed(node, state):
            parent = node.parent
            while parent is not None and state.get(parent) != _DROP:
                parent = parent.parent
            rows.append(
                FitRow(
                    name=node.name,
                    priority=node.part.priority,
                    tokens_before=node.tokens,
                    tokens_after=0,
                    action="dropped",
                    units=units,
                    reason=f"with {parent.name}" if parent is not None else "",
                )
            )
            continue
        if st == _DROP:
            action = "fallback" if node.part.fallback else "dropped"
            after = counter.count(node.part.fallback)
        elif st is None:
            action, after = "kept", fitter.parser.estimate(node, state)
        else:
            action = "cut"
            after = (
                counter.count(_cut(counter, node, int(st)))
                if node.kind == "text"
                else fitter.parser.estimate(node, state)
            )
        if node.kind == "composite" and st is None and after != node.tokens:
            action = "cut"
        rows.append(
            FitRow(
                name=node.name,
                priority=node.part.priority,
                tokens_before=node.tokens,
                tokens_after=after,
                action=action,  # type: ignore[arg-type]
                units=units,
                reason=reasons.get(node, "") if action != "kept" else "",
            )
        )
    return tuple(rows)


def _budget_error(
    fitter: _Fitter, *, state: Mapping[_Node, Any], fit: Fit, reserve: int, limit: int, real: int
) -> TokenBudgetError:
    parser = fitter.parser
    required = [
        (n.name, parser.estimate(n, state))
        for n in parser.nodes
        if n.part.priority is None and not fitter.removed(n, state) and n.parent is None
    ]
    fallbacks = sum(
        fitter.counter.count(n.part.fallback)
        for n in parser.nodes
        if state.get(n) == _DROP and not fitter.removed(n, state)
    )
    unmarked = max(real - sum(t for _, t in required) - fallbacks, 0)
    parts = [("text outside parts", unmarked), *required]
    if fallbacks:
        parts.append(("fallbacks", fallbacks))
    listed = ", ".join(f"{name} {tokens} tokens" for name, tokens in parts)
    return TokenBudgetError(
        f"the prompt needs {real} tokens with every part that may be dropped gone, over the limit of {limit} "
        f"(budget {fit.budget} - reserve {reserve}); what cannot be cut: {listed}. Raise the budget, lower "
        "the reserve, or give more of the prompt a {% part %} or a Part with a priority",
        budget=limit,
        minimum=real,
        parts=tuple(parts),
    )
