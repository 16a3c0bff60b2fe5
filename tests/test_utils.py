from __future__ import annotations

import pytest

from promptkit import UNSET, MissingDependencyError
from promptkit._utils import is_set, mask_key, redact, require


def test_unset_is_falsy_singleton_distinct_from_none() -> None:
    assert not UNSET
    assert UNSET is not None
    assert repr(UNSET) == "UNSET"
    assert is_set(None)
    assert not is_set(UNSET)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("key sk-ant-api03-abcdefghijklmnop", "abcdefghijklmnop"),
        ("Authorization: Bearer abcdef1234567890", "abcdef1234567890"),
        ('{"api_key": "zzzzzzzzzzzz"}', "zzzzzzzzzzzz"),
        ("x-api-key=qwertyuiop123", "qwertyuiop123"),
    ],
)
def test_redact_masks_secrets(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_redact_leaves_plain_text() -> None:
    assert redact("the model said hello") == "the model said hello"


def test_mask_key() -> None:
    assert mask_key(None) == "None"
    assert mask_key("sk-1234567890abcdef") == "'sk-...ef'"
    assert "short" not in mask_key("short")


def test_require_gives_install_line() -> None:
    with pytest.raises(MissingDependencyError, match=r'pip install "promptkit\[extra1\]"'):
        require("definitely_not_installed_pkg", extra="extra1")
    assert require("json", extra="x").dumps([1]) == "[1]"
