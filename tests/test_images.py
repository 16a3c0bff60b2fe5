"""Images in chat templates: reading and checking them, placing them in messages, sending them in
each provider's format, estimating their tokens and showing them in notebooks."""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

import promptkit
from promptkit import (
    ChatTemplate,
    ConfigurationError,
    ImageError,
    ImagePart,
    Message,
    Prompt,
    Template,
    TemplateError,
    TextPart,
    count_tokens,
    estimate_image_tokens,
    image,
    image_info,
)
from promptkit._images import MAX_IMAGE_BYTES, PROVIDER_IMAGE_LIMITS
from promptkit.testing import ProviderServer

pytest.importorskip("openai")
pytest.importorskip("anthropic")
from promptkit.backends.anthropic import AnthropicBackend
from promptkit.backends.openai import OpenAIBackend, OpenAICompatibleBackend

KEY = "sk-test-secret-0123456789abcdef"
KINDS = ["openai", "openai-compatible", "anthropic"]

ASK = ChatTemplate.from_source(
    '{% role "system" %}You describe images.{% endrole %}\n'
    '{% role "user" %}What is in {{ photo | image }} and {{ other | image("low") }}?{% endrole %}',
    name="ask",
)


def encoded(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB", **save: Any) -> bytes:
    out = io.BytesIO()
    PILImage.new(mode, size, (255, 0, 0, 128) if mode == "RGBA" else "red").save(out, format=fmt, **save)
    return out.getvalue()


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 bytes per pixel."""
    out = io.BytesIO()
    PILImage.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="PNG", compress_level=0)
    return out.getvalue()


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


# -- reading images ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "save", "media_type"),
    [
        ("PNG", {}, "image/png"),
        ("JPEG", {}, "image/jpeg"),
        ("JPEG", {"progressive": True, "exif": b"Exif\x00\x00" + b"\x00" * 2000}, "image/jpeg"),
        ("GIF", {}, "image/gif"),
        ("WEBP", {}, "image/webp"),
        ("WEBP", {"lossless": True}, "image/webp"),
    ],
)
def test_header_gives_format_and_size(fmt: str, save: dict[str, Any], media_type: str) -> None:
    assert image_info(encoded(fmt, (321, 123), **save)) == (media_type, 321, 123)


def test_webp_with_alpha_uses_the_extended_header() -> None:
    data = encoded("WEBP", (77, 55), mode="RGBA")
    assert data[12:16] == b"VP8X"
    assert image_info(data) == ("image/webp", 77, 55)


@pytest.mark.parametrize(("fmt", "name"), [("BMP", "BMP"), ("TIFF", "TIFF"), ("ICO", "ICO")])
def test_other_formats_are_named(fmt: str, name: str) -> None:
    with pytest.raises(ImageError, match=f"is {name}, a format the providers do not accept"):
        image(encoded(fmt, (16, 16)), name="scan")


def test_svg_and_non_images_are_refused() -> None:
    with pytest.raises(ImageError, match="SVG"):
        image(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')
    with pytest.raises(ImageError, match="is not an image") as info:
        image(b"hello, world", name="doc")
    assert info.value.variable == "doc"
    assert isinstance(info.value, ConfigurationError)


def test_files_urls_bytes_and_pil_images(tmp_path: Path) -> None:
    png = encoded("PNG", (8, 6))
    file = tmp_path / "cat.png"
    file.write_bytes(png)
    from_path = image(file)
    assert from_path.url == "data:image/png;base64," + base64.b64encode(png).decode()
    assert (from_path.media_type, from_path.width, from_path.height) == ("image/png", 8, 6)
    assert image(path=str(file)) == from_path
    assert image(png) == from_path
    assert image(from_path.url) == from_path  # a base64 data URI is checked like bytes
    pil = image(PILImage.new("CMYK", (5, 4)), detail="high")  # CMYK cannot be PNG: converted
    assert (pil.media_type, pil.width, pil.height, pil.detail) == ("image/png", 5, 4, "high")
    linked = image("https://example.com/cat.png", detail="low")
    assert linked == ImagePart(url="https://example.com/cat.png", detail="low")
    assert image(linked, detail="high").detail == "high"


def test_a_str_is_never_read_as_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("cat.png").write_bytes(encoded("PNG"))
    with pytest.raises(ImageError, match=r"not an image URL.*pathlib.Path, or image\(path=...\)"):
        image("cat.png")
    with pytest.raises(ImageError, match="not an image URL"):
        image("http://example.com/cat.png")  # https only
    with pytest.raises(ImageError, match="base64"):
        image("data:image/png,rawbytes")
    with pytest.raises(ImageError, match="invalid base64"):
        image("data:image/png;base64,***")


def test_missing_files_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"cannot read the image 'photo' from .*missing.png.*No such file") as info:
        image(tmp_path / "missing.png", name="photo")
    assert info.value.variable == "photo"
    with pytest.raises(ImageError, match="cannot read"):
        image(tmp_path)  # a directory
    with pytest.raises(ImageError, match="not both"):
        image("https://example.com/a.png", path="a.png")
    with pytest.raises(ImageError, match="detail"):
        image("https://example.com/a.png", detail="medium")  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="cannot be an image: a int"):
        image(3)
    with pytest.raises(ConfigurationError, match="detail"):
        ImagePart(url="https://example.com/a.png", detail="max")  # type: ignore[arg-type]


def test_a_file_over_the_largest_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "huge.png"
    with big.open("wb") as f:  # a sparse file: its size is known without writing 21 MB
        f.write(encoded("PNG"))
        f.truncate(MAX_IMAGE_BYTES + 1024 * 1024)
    with pytest.raises(ImageError, match=r"'poster' is 21.0 MB, over .*OpenAI: 20 MB per image") as info:
        image(big, name="poster")
    assert info.value.limit == MAX_IMAGE_BYTES


# -- placing images in templates --------------------------------------------------------------


def test_a_role_block_becomes_text_and_images_in_order() -> None:
    png, gif = encoded("PNG", (8, 6)), encoded("GIF", (3, 2))
    system, user = ASK.render(photo=png, other=gif)
    assert system == Message("system", "You describe images.")
    assert user.content == (
        TextPart(text="What is in "),
        image(png),
        TextPart(text=" and "),
        image(gif, detail="low"),
        TextPart(text="?"),
    )
    assert user.text == "What is in  and ?"
    assert user.content[1].name == "photo"


def test_loops_pairs_stripping_and_merging() -> None:
    chat = ChatTemplate(
        [
            ("user", "Compare:\n{% for p in photos %}{{ p | image }}{% endfor %}\n"),
            ("user", "{{ question }}"),
        ]
    )
    photos = [encoded("PNG", (i + 1, 1)) for i in range(3)]
    (message,) = chat.render(photos=photos, question="Which is widest?")
    content = message.content
    assert [type(p).__name__ for p in content] == ["TextPart", *["ImagePart"] * 3, "TextPart", "TextPart"]
    assert content[0] == TextPart(text="Compare:\n")
    assert [p.width for p in content[1:4]] == [1, 2, 3]  # type: ignore[union-attr]
    assert [p.name for p in content[1:4]] == ["photos[0]", "photos[1]", "photos[2]"]  # type: ignore[union-attr]
    assert content[4:] == (TextPart(text="\n\n"), TextPart(text="Which is widest?"))
    only = ChatTemplate([("user", "  {{ p | image }}  ")]).render(p=photos[0])
    assert only[0].content == (image(photos[0]),)  # surrounding whitespace stripped, no empty text


def test_an_image_value_never_renders_as_text() -> None:
    chat = ChatTemplate([("system", "Hi"), ("user", "Look: {{ photo }}")], name="look")
    for value in (encoded("PNG"), bytearray(encoded("JPEG")), image(encoded("GIF")), PILImage.new("RGB", (2, 2))):
        with pytest.raises(ImageError, match=r"'photo' is an image .* \{\{ photo \| image \}\}") as info:
            chat.render(photo=value)
        assert (info.value.variable, info.value.template, info.value.lineno) == ("photo", "look[1:user]", 1)
    with pytest.raises(ImageError, match=r"'shots\[1\]' is an image"):
        ChatTemplate([("user", "{% for s in shots %}{{ s }}{% endfor %}")]).render(shots=["a", encoded("PNG")])
    with pytest.raises(ImageError, match="is an image"):
        Template("{{ photo }}").render(photo=encoded("PNG"))
    # what is not an image stays text: paths, other bytes, plain values
    assert Template("{{ p }} {{ b }}").render(p=Path("a/cat.png"), b=b"abc") == "a/cat.png b'abc'"


def test_text_never_becomes_an_image(tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(encoded("PNG"))
    with pytest.raises(ImageError, match=r"'photo' \('cat.png'\) is not an image URL") as info:
        ChatTemplate([("user", "{{ photo | image }}")], name="q").render(photo="cat.png")
    assert (info.value.variable, info.value.template) == ("photo", "q[0:user]")
    chat = ChatTemplate([("user", "{{ photo | image }}")])
    assert chat.render(photo=tmp_path / "cat.png")[0].content[0].media_type == "image/png"  # type: ignore[union-attr]


def test_image_errors_in_templates_name_the_variable(tmp_path: Path) -> None:
    chat = ChatTemplate.from_source('{% role "user" %}\nSee\n{{ scan | image }}{% endrole %}', name="scan.prompt")
    with pytest.raises(ImageError, match=r"cannot read the image 'scan'.*\(in scan.prompt, line 3\)"):
        chat.render(scan=tmp_path / "missing.png")
    with pytest.raises(ImageError, match="'scan' is BMP"):
        chat.render(scan=encoded("BMP"))
    with pytest.raises(ImageError, match="detail must be"):
        ChatTemplate([("user", "{{ p | image('tiny') }}")]).render(p=encoded("PNG"))


def test_images_belong_in_role_blocks_of_chat_templates() -> None:
    with pytest.raises(TemplateError, match=r"image filter on 'p' places an image in a ChatTemplate"):
        Template("{{ p | image }}").render(p=encoded("PNG"))
    outside = ChatTemplate.from_source('{{ p | image }}{% role "user" %}hi{% endrole %}')
    with pytest.raises(TemplateError, match="only be placed inside a role block"):
        outside.render(p=encoded("PNG"))
    captured = ChatTemplate.from_source('{% role "user" %}{% set x %}{{ p | image }}{% endset %}{% endrole %}')
    with pytest.raises(TemplateError, match="cannot be captured"):
        captured.render(p=encoded("PNG"))


def test_a_value_cannot_forge_an_image_marker() -> None:
    from promptkit._templates._sandbox import END, MARK

    chat = ChatTemplate([("user", "{{ a }}{{ p | image }}")])
    (message,) = chat.render(a="i0" + END + "x", p=encoded("PNG"))
    assert message.content[0] == TextPart(text="i0\x01x")
    assert MARK not in json.dumps([getattr(p, "text", "") for p in message.content])


# -- sending ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_prompt_with_images_is_sent_in_each_providers_format(kind: str, server: ProviderServer) -> None:
    png = encoded("PNG", (64, 48))
    data = base64.b64encode(png).decode()
    with _backend(kind, server) as llm:
        prompt = Prompt(ASK, llm)
        preview = prompt.preview(photo=png, other="https://example.com/dog.jpg")
        server.add("a red square and a dog")
        assert prompt.complete(photo=png, other="https://example.com/dog.jpg") == "a red square and a dog"
    body = server.requests[0].body
    assert json.dumps(preview.body, sort_keys=True) == json.dumps(body, sort_keys=True)
    content = body["messages"][-1]["content"]
    if kind == "anthropic":
        assert body["system"] == "You describe images."
        assert content == [
            {"type": "text", "text": "What is in "},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
            {"type": "text", "text": " and "},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/dog.jpg"}},
            {"type": "text", "text": "?"},
        ]
    else:
        assert body["messages"][0] == {"role": "system", "content": "You describe images."}
        assert content == [
            {"type": "text", "text": "What is in "},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
            {"type": "text", "text": " and "},
            {"type": "image_url", "image_url": {"url": "https://example.com/dog.jpg", "detail": "low"}},
            {"type": "text", "text": "?"},
        ]


def test_the_preview_estimates_image_tokens_and_says_so(server: ProviderServer) -> None:
    png = encoded("PNG", (1024, 1024))
    with OpenAIBackend(model="gpt-4o", base_url=server.openai_base_url, api_key=KEY) as llm:
        preview = Prompt(ASK, llm).preview(photo=png, other="https://example.com/dog.jpg")
    tokens = preview.input_tokens
    assert tokens is not None
    assert tokens.image_tokens == 765 + 85  # type: ignore[attr-defined]  # 4 tiles; the linked one is low detail
    assert tokens.exact is False  # type: ignore[attr-defined]
    assert "(estimated: 850 for images)" in repr(preview)
    messages = Prompt(ASK).render(photo=png, other="https://example.com/dog.jpg")
    text_only = [
        Message(
            m.role, m.content if isinstance(m.content, str) else tuple(p for p in m.content if isinstance(p, TextPart))
        )
        for m in messages
    ]
    assert tokens == count_tokens(text_only, model="gpt-4o") + 850
    with AnthropicBackend(model="claude-sonnet-4-5", base_url=server.anthropic_base_url, api_key=KEY) as claude:
        estimate = Prompt(ASK, claude).preview(photo=png, other="https://example.com/dog.jpg").input_tokens
    assert estimate.image_tokens == 1399 + 1399  # type: ignore[union-attr]  # the unknown size counts as 1024x1024


def test_provider_size_limits_stop_the_request_before_it_is_sent(server: ProviderServer) -> None:
    big = noise_png(1400)  # about 5.9 MB: under OpenAI's 20 MB, over Anthropic's 5 MB once in base64
    assert PROVIDER_IMAGE_LIMITS["anthropic"][0] < len(big) < PROVIDER_IMAGE_LIMITS["openai"][0]
    with _backend("anthropic", server) as claude:
        with pytest.raises(ImageError, match=r"the image 'photo' is 7.\d MB, over Anthropic's limit of 5 MB") as info:
            Prompt(ASK, claude).complete(photo=big, other="https://example.com/dog.jpg")
    assert (info.value.variable, info.value.provider, info.value.limit) == ("photo", "anthropic", 5 * 1024 * 1024)
    assert server.requests == []
    server.add("noise")
    with _backend("openai", server) as gpt:
        assert Prompt(ASK, gpt).complete(photo=big, other="https://example.com/dog.jpg") == "noise"
    oversized = ImagePart(url="data:image/png;base64," + "A" * (28 * 1024 * 1024), name="poster")
    with _backend("openai", server) as gpt, pytest.raises(ImageError, match=r"'poster' is 21\.0 MB, over OpenAI's"):
        gpt.complete([Message("user", (oversized,))])
    assert len(server.requests) == 1


def test_anthropic_refuses_inline_images_it_cannot_take(server: ProviderServer) -> None:
    with _backend("anthropic", server) as claude:
        with pytest.raises(ImageError, match="base64 only"):
            claude.complete([Message("user", (ImagePart(url="data:image/png,abc"),))])
        with pytest.raises(ImageError, match="of type image/bmp"):
            claude.complete([Message("user", (ImagePart(url="data:image/bmp;base64,Qk0="),))])
    assert server.requests == []


def test_detail_is_part_of_the_request_identity() -> None:
    from promptkit.backends._contract import Request

    plain = Request(backend="b", messages=(Message("user", (ImagePart(url="https://e.com/a.png"),)),))
    low = Request(backend="b", messages=(Message("user", (ImagePart(url="https://e.com/a.png", detail="low"),)),))
    assert plain.digest != low.digest


# -- token estimates --------------------------------------------------------------------------


def _sized(width: int, height: int, detail: Any = None) -> ImagePart:
    return ImagePart(url="https://example.com/a.png", width=width, height=height, detail=detail)


@pytest.mark.parametrize(
    ("size", "model", "detail", "tokens"),
    [
        ((1024, 1024), "gpt-4o", None, 85 + 4 * 170),  # scaled to 768x768: 2x2 tiles
        ((2048, 4096), "gpt-4o", "high", 85 + 6 * 170),  # 1024x2048, then 768x1536: 2x3 tiles
        ((512, 512), "openai:gpt-4.1", "auto", 85 + 170),
        ((4000, 3000), "gpt-4o", "low", 85),
        ((1024, 1024), "gpt-4o-mini", None, 2833 + 4 * 5667),
        ((1024, 1024), "o3", None, 75 + 4 * 150),
        ((1024, 1024), "gpt-4.1-mini", None, 1659),  # 1024 patches x 1.62
        ((1800, 2400), "gpt-4.1-mini", None, 2353),  # scaled to 1452 patches x 1.62
        ((1024, 1024), "claude-sonnet-4-5", None, 1399),  # 1024 x 1024 / 750
        ((200, 200), "anthropic:claude-3-5-haiku-latest", None, 54),
        ((3000, 1500), "claude-sonnet-4-5", None, 1600),  # 1568x784, capped at about 1,600
    ],
)
def test_each_providers_rule(size: tuple[int, int], model: str, detail: Any, tokens: int) -> None:
    assert estimate_image_tokens(_sized(*size, detail), model=model) == tokens


def test_sizes_come_from_inline_images_and_default_for_links() -> None:
    inline = ImagePart(url="data:image/png;base64," + base64.b64encode(encoded("PNG", (512, 512))).decode())
    assert estimate_image_tokens(inline, model="gpt-4o") == 85 + 170
    assert estimate_image_tokens(ImagePart(url="https://example.com/a.png")) == 765  # as 1024x1024
    with pytest.raises(ConfigurationError):
        estimate_image_tokens("https://example.com/a.png")  # type: ignore[arg-type]


def test_count_tokens_marks_image_estimates() -> None:
    (message,) = ChatTemplate([("user", "Describe {{ p | image }}")]).render(p=encoded("PNG", (100, 100)))
    count = count_tokens([message], model="claude-sonnet-4-5")
    assert count.image_tokens == 14  # ceil(100 x 100 / 750)
    assert not count.exact
    text = count_tokens([("user", "Describe ")], model="claude-sonnet-4-5")
    assert count == text + 14


# -- notebooks --------------------------------------------------------------------------------


def test_messages_show_thumbnails_with_escaped_attributes() -> None:
    png = encoded("PNG", (8, 6))
    part = image(png, name='"><script>x</script>')
    html = Message(
        "user", (TextPart(text="<b>see</b>"), part, ImagePart(url="https://example.com/a.png"))
    )._repr_html_()
    src = "data:image/png;base64," + base64.b64encode(png).decode()
    assert f'<img src="{src}"' in html
    assert "<script>" not in html
    assert "&quot;&gt;&lt;script&gt;" in html
    assert "&lt;b&gt;see&lt;/b&gt;" in html
    assert "max-width:160px" in html
    assert html.count("<img") == 1  # a linked image is named, not fetched
    assert "image https://example.com/a.png" in html


def test_large_images_are_shrunk_for_the_thumbnail(monkeypatch: pytest.MonkeyPatch) -> None:
    import promptkit._messages as messages

    monkeypatch.setattr(messages, "THUMBNAIL_MAX_CHARS", 1000)
    part = image(noise_png(400))
    html = messages.image_html(part)
    src = html.split('src="', 1)[1].split('"', 1)[0]
    assert len(src) < len(part.url)
    thumb = base64.b64decode(src.partition(",")[2])
    assert image_info(thumb)[1:] == (320, 320)
    monkeypatch.setattr(messages, "_shrunk", lambda url: None)  # as without Pillow
    assert "<img" not in messages.image_html(part)


def test_template_previews_show_images() -> None:
    png = encoded("PNG", (8, 6))
    preview = ASK.preview(photo=png, other="https://example.com/dog.jpg")
    assert preview.parts[1] == ("user", "What is in [image photo 8x6] and [image other]?")
    assert preview.images == (image(png), image("https://example.com/dog.jpg", detail="low"))
    html = preview._repr_html_()
    assert html.count("<img") == 1
    assert "\x04" not in html
    assert "image other" in html


def test_public_names() -> None:
    for name in ("image", "image_info", "ImageInfo", "ImageError", "estimate_image_tokens"):
        assert name in promptkit.__all__
    assert issubclass(ImageError, TemplateError)
    assert issubclass(ImageError, ConfigurationError)
    assert "data:image/png;base64," in repr(image(encoded("PNG", (300, 300))))
    assert len(repr(image(noise_png(64)))) < 120
