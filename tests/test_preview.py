"""Request previews: the exact body each adapter sends, checked against what the server receives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

import promptkit
from promptkit import ImagePart, Message, Prompt, PydanticParser, TextPart, count_tokens, estimate_cost
from promptkit.backends import FallbackBackend, RateLimitedBackend, RequestPreview
from promptkit.backends._preview import mask_header
from promptkit.testing import FunctionBackend, MockBackend
from promptkit.testing._server import ProviderServer

pytest.importorskip("openai")
pytest.importorskip("anthropic")
from promptkit.backends.anthropic import AnthropicBackend
from promptkit.backends.openai import OpenAIBackend, OpenAICompatibleBackend

KEY = "sk-test-secret-0123456789abcdef"
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
KINDS = ["openai", "openai-compatible", "anthropic"]


class City(BaseModel):
    name: str
    country: str


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s


def _backend(kind: str, server: ProviderServer, model: str = "m-test") -> Any:
    if kind == "openai":
        return OpenAIBackend(model=model, base_url=server.openai_base_url, api_key=KEY)
    if kind == "openai-compatible":
        return OpenAICompatibleBackend(model=model, base_url=server.openai_base_url, api_key=KEY)
    return AnthropicBackend(model=model, base_url=server.anthropic_base_url, api_key=KEY)


def _same_json(preview: RequestPreview, received: Any) -> None:
    assert json.dumps(preview.body, sort_keys=True) == json.dumps(received, sort_keys=True)


def _check_headers(preview: RequestPreview, received: dict[str, str]) -> None:
    assert KEY not in json.dumps(dict(preview.headers))
    for name, value in preview.headers.items():
        if name in ("authorization", "x-api-key"):
            assert value.endswith("sk-...ef")
            assert received[name] == "***"  # the server masks what it was sent
        else:
            assert received[name] == value, name


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("kind", KINDS)
def test_prompt_preview_is_the_body_the_server_receives(kind: str, stream: bool, server: ProviderServer) -> None:
    extra = {"metadata": {"user_id": "u-1"}} if kind == "anthropic" else {"logprobs": True}
    with _backend(kind, server) as llm:
        prompt = Prompt(
            [("system", "Answer in JSON."), ("user", "Which city is the capital of {{ country }}?")],
            llm,
            parser=PydanticParser(City, mode="native"),
        ).with_params(temperature=0.2, max_tokens=50, stop=["\n\n"], extra=extra)
        preview = prompt.preview(country="France", stream=stream)
        assert server.requests == []  # nothing was sent
        assert "output_config" in preview.body if kind == "anthropic" else "response_format" in preview.body
        assert (preview.body.get("stream") is True) is stream
        server.add('{"name": "Paris", "country": "France"}')
        if stream:
            assert list(prompt.stream(country="France"))[-1] == City(name="Paris", country="France")
        else:
            assert prompt.complete(country="France") == City(name="Paris", country="France")
    [received] = server.requests
    _same_json(preview, received.body)
    assert preview.method == received.method == "POST"
    assert preview.url is not None
    assert preview.url.endswith(received.path)
    _check_headers(preview, dict(received.headers))
    assert preview.max_output_tokens == 50


@pytest.mark.parametrize("kind", KINDS)
def test_backend_preview_of_images_and_defaults(kind: str, server: ProviderServer) -> None:
    messages = [Message("system", "Describe images."), Message("user", (_text("What is this?"), _image(PIXEL)))]
    with _backend(kind, server) as llm:
        preview = llm.preview(messages)
        server.add("a pixel")
        llm.complete(messages)
    _same_json(preview, server.requests[0].body)
    if kind == "anthropic":
        assert preview.body["system"] == "Describe images."
        assert preview.body["messages"][0]["content"][1]["source"]["type"] == "base64"
        assert preview.max_output_tokens == llm.default_max_tokens  # sent although the call set none
    else:
        assert preview.body["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": PIXEL}}
        assert preview.max_output_tokens is None


def _text(text: str) -> TextPart:
    return TextPart(text=text)


def _image(url: str) -> ImagePart:
    return ImagePart(url=url)


def test_tokens_and_cost_of_a_known_model(server: ProviderServer) -> None:
    with OpenAIBackend(model="gpt-4o-mini", base_url="https://api.openai.com/v1", api_key=KEY) as llm:
        preview = llm.preview([("system", "Be brief."), "Capital of France?"], max_tokens=100)
    assert preview.url == "https://api.openai.com/v1/chat/completions"
    expected = count_tokens([("system", "Be brief."), "Capital of France?"], model="openai:gpt-4o-mini")
    assert preview.input_tokens == expected
    assert getattr(preview.input_tokens, "exact", None) is True
    cost = estimate_cost("gpt-4o-mini", input_tokens=expected, output_tokens=100, provider="openai")
    assert cost is not None
    assert preview.estimated_cost == cost
    assert "estimated_cost=$" in repr(preview)
    assert preview.body["max_completion_tokens"] == 100


def test_unknown_model_counts_approximately_and_has_no_price(server: ProviderServer) -> None:
    with _backend("openai-compatible", server, model="my-local-llama") as llm:
        preview = llm.preview("hi")
    assert preview.input_tokens is not None
    assert getattr(preview.input_tokens, "exact", None) is False
    assert preview.estimated_cost is None
    assert "estimated_cost=unknown" in repr(preview)


def test_a_missing_key_is_shown_not_raised() -> None:
    preview = OpenAIBackend(model="gpt-4o-mini").preview("hi")  # the test session strips API keys
    assert preview.headers["authorization"] == "Bearer (none)"
    assert AnthropicBackend(model="claude-haiku-4-5").preview("hi").headers["x-api-key"] == "(none)"


def test_test_doubles_preview_the_request_itself() -> None:
    mock = MockBackend(["x"], native_output=True)
    preview = mock.preview([("system", "S"), "hi"], temperature=0, stop="END", stream=True)
    assert preview.body == {
        "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
        "params": {"temperature": 0, "stop": ["END"]},
        "stream": True,
    }
    assert (preview.url, preview.method, preview.backend) == (None, None, "mock")
    assert "no wire format" in repr(preview)
    assert json.loads(preview.json()) == preview.body
    assert "&quot;" not in preview.json()
    assert "<pre" in preview._repr_html_()
    assert mock.calls == []
    images = FunctionBackend(lambda m, p: "x").preview([Message("user", (_text("see"), _image(PIXEL)))])
    assert images.body["messages"][0]["content"][1] == {"type": "image", "url": PIXEL, "media_type": None}


def test_prompt_preview_renders_like_a_call_without_calling() -> None:
    mock = MockBackend(['{"name": "Paris", "country": "France"}'], native_output=True)
    prompt = Prompt("Capital of {{ country }}?", mock, parser=PydanticParser(City, mode="native"))
    preview = prompt.preview(country="France", params={"temperature": 0})
    assert mock.calls == []
    assert preview.body["params"]["output_schema"]["name"] == "City"
    assert preview.body["params"]["temperature"] == 0
    assert preview.body["messages"] == [{"role": "user", "content": m.content} for m in prompt.render(country="France")]
    prompt.complete(country="France", params={"temperature": 0})
    sent = mock.last_request
    assert preview.body["messages"][0]["content"] == sent.messages[0].content


def test_prompt_preview_reports_no_run_to_hooks() -> None:
    from promptkit import add_hook, remove_hook

    seen: list[str] = []

    class Hook:
        def on_run_start(self, run: Any) -> None:
            seen.append("start")

    hook = Hook()
    add_hook(hook)
    try:
        Prompt("hi", MockBackend()).preview()
        Prompt("hi", MockBackend(["ok"])).complete()
    finally:
        remove_hook(hook)
    assert seen == ["start"]  # the call, not the preview


def test_wrappers_preview_what_their_member_sends(server: ProviderServer) -> None:
    with _backend("anthropic", server, model="claude-test") as first, _backend("openai", server) as second:
        fallback = FallbackBackend([first, second])
        preview = fallback.preview("hi", max_tokens=10)
        assert preview.url is not None
        assert preview.url.endswith("/v1/messages")
        assert preview.backend == "anthropic:claude-test"
        limited = RateLimitedBackend(second, requests_per_minute=60).preview("hi")
        assert limited.body == second.preview("hi").body


def test_mask_header_keeps_the_scheme_and_hides_the_secret() -> None:
    assert mask_header("Authorization", f"Bearer {KEY}") == "Bearer sk-...ef"
    assert mask_header("x-api-key", KEY) == "sk-...ef"
    assert mask_header("x-api-key", "short") == "***"
    assert mask_header("content-type", "application/json") == "application/json"


# -- provider prompt caching ------------------------------------------------------------------------
CACHED_CHAT = [("system", "You are {{ persona }}. Answer briefly."), ("user", "{{ question }}")]


@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_a_cache_prefix_reaches_anthropic_as_cache_control(ttl: str, server: ProviderServer) -> None:
    with _backend("anthropic", server) as llm:
        prompt = Prompt(
            [*CACHED_CHAT[:1], ("user", "Earlier question"), ("assistant", "Earlier answer"), CACHED_CHAT[1]],
            llm,
            cache_prefix=ttl,  # type: ignore[arg-type]
        )
        preview = prompt.preview(persona="a librarian", question="Where are the atlases?")
        server.add("Second floor.")
        assert prompt.complete(persona="a librarian", question="Where are the atlases?") == "Second floor."
    body = server.requests[0].body
    _same_json(preview, body)
    control = {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}
    assert body["system"] == "You are a librarian. Answer briefly."  # not before the breakpoint's message
    assistant = body["messages"][1]
    assert assistant["content"] == [{"type": "text", "text": "Earlier answer", "cache_control": control}]
    assert body["messages"][-1]["content"] == "Where are the atlases?"  # the last message is never cached
    assert preview.prefix_variables == ("persona",)


def test_a_system_breakpoint_and_images_keep_their_blocks(server: ProviderServer) -> None:
    messages = [
        Message("system", "Be terse.", cache="1h"),
        Message("user", (_text("What is this?"), _image(PIXEL)), cache="5m"),
        Message("user", "And briefly?"),
    ]
    with _backend("anthropic", server) as llm:
        preview = llm.preview(messages)
        server.add("A pixel.")
        llm.complete(messages)
    body = server.requests[0].body
    _same_json(preview, body)
    assert body["system"] == [
        {"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    blocks = body["messages"][0]["content"]
    assert blocks[-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in blocks[0]


def test_openai_ignores_breakpoints_and_the_preview_prices_a_hit(server: ProviderServer) -> None:
    from promptkit import Price, price_for, set_price

    set_price("cache-test-model", Price(input=3.0, output=15.0, cached_input=0.3))
    try:
        _openai_cache_preview(server, price_for)
    finally:
        set_price("cache-test-model", None)


def _openai_cache_preview(server: ProviderServer, price_for: Any) -> None:
    with _backend("openai", server, model="cache-test-model") as llm:
        prompt = Prompt(CACHED_CHAT, llm, cache_prefix="5m")
        preview = prompt.preview(persona="a chemist", question="Why is the sky blue?")
        server.add("Scattering.")
        prompt.complete(persona="a chemist", question="Why is the sky blue?")
    body = server.requests[0].body
    _same_json(preview, body)
    assert "cache_control" not in json.dumps(body)  # OpenAI caches long prefixes by itself
    system = [Message("system", "You are a chemist. Answer briefly.")]
    assert preview.cached_prefix_tokens == count_tokens(system, model="gpt-4o-mini")  # approximated alike
    price = price_for("cache-test-model")
    assert price is not None
    assert price.cached_input is not None
    expected = int(preview.cached_prefix_tokens) * (price.input - price.cached_input) / 1e6
    assert preview.cache_hit_saving == pytest.approx(expected)
    assert "cached_prefix_tokens=" in repr(preview)


def test_which_variables_make_the_cached_prefix_differ() -> None:
    prompt = Prompt(
        [("system", "Today is {{ day }}. {% if strict %}Be strict.{% endif %}"), ("user", "{{ question }}")],
        MockBackend(),
        cache_prefix="1h",
    )
    monday = {"day": "Monday", "strict": True, "question": "a"}
    assert prompt.cache_prefix_variables(**monday) == ("day", "strict")
    assert prompt.cache_miss_variables(monday, {**monday, "question": "b"}) == ()  # the same prefix: a hit
    assert prompt.cache_miss_variables(monday, {**monday, "day": "Tuesday", "question": "b"}) == ("day",)
    assert prompt.cache_miss_variables(monday, {"day": "Tuesday", "strict": False, "question": "a"}) == (
        "day",
        "strict",
    )
    fewshot = Prompt(
        [("system", "Classify."), promptkit.FewShot(), ("user", "{{ text }}")],
        MockBackend(),
        examples=[{"text": "great", "label": "pos"}],
        example_template=promptkit.ChatTemplate([("user", "{{ text }}"), ("assistant", "{{ label }}")]),
        cache_prefix="5m",
    )
    assert fewshot.cache_prefix_variables(text="fine") == ("examples",)
    marked = fewshot.render(text="fine")
    assert [m.cache for m in marked] == [None, None, "5m", None]
    with pytest.raises(promptkit.ConfigurationError, match="cache_prefix"):
        Prompt("x", MockBackend(), cache_prefix="1d")  # type: ignore[arg-type]
    assert fewshot.with_cache_prefix(None).render(text="fine")[2].cache is None


def test_a_breakpoint_is_part_of_the_request_identity() -> None:
    llm = MockBackend()
    plain = llm.build_request([Message("system", "s"), Message("user", "u")])
    marked = llm.build_request([Message("system", "s", cache="5m"), Message("user", "u")])
    assert plain.digest != marked.digest
    assert Message("user", "u", cache="1h") != Message("user", "u")
    with pytest.raises(promptkit.ConfigurationError, match="cache must be"):
        Message("user", "u", cache="2h")  # type: ignore[arg-type]
