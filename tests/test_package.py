"""The package as users meet it: its namespace, its import cost, its layering and its docs."""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
import json
import pickle
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import promptkit
from promptkit._utils import defined_in

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "promptkit"

HEAVY = (
    "openai",
    "anthropic",
    "tiktoken",
    "numpy",
    "torch",
    "sentence_transformers",
    "pandas",
    "bm25s",
    "httpx2",
)

# Import layers (see the architecture notes): a module may import only from its own layer or below.
LAYERS: dict[str, int] = {
    "_errors": 0,
    "_utils": 0,
    "_messages": 1,
    "_tokens": 2,
    "_tiktoken_files": 2,
    "_embeddings": 2,
    "_tracing": 2,
    "backends": 2,
    "_templates": 3,
    "_parsers": 3,
    "backends._retry": 3,
    "backends._http": 3,
    "backends._sdkbase": 3,
    "backends._cache": 3,
    "backends._cost": 3,
    "_fewshot": 4,
    "backends.openai": 4,
    "backends.anthropic": 4,
    "_strategies": 5,
    "_prompt": 6,
    "_batch": 7,
    "_files": 7,
    "__init__": 8,
    "__main__": 9,
}
SIDE = "testing"  # may import layers 0-2 only


def _layer_of(module: str) -> int | None:
    """Layer of a dotted module name relative to the package, e.g. '_templates' or 'backends.openai'."""
    parts = module.split(".")
    while parts:
        name = ".".join(parts)
        if name in LAYERS:
            return LAYERS[name]
        # private helpers inside a subpackage share the subpackage's first registered parent
        parts = parts[:-1]
    return None


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        name = node.module or ""
        return name.removeprefix("promptkit.") if name.startswith("promptkit") else ""
    base = current.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    return ".".join([*base, *([node.module] if node.module else [])])


def _top_level_imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    found: list[ast.ImportFrom | ast.Import] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):  # `if TYPE_CHECKING:` blocks count too
            found.extend(n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom)))
    return found


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_imports_only_point_down(module: str, path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    if module.startswith(SIDE):
        own = 2
    else:
        layer = _layer_of(module or "__init__")
        assert layer is not None, f"promptkit.{module} has no layer; add it to LAYERS (and the architecture notes)"
        own = layer
    for node in _top_level_imports(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        target = _resolve(module, is_package, node)
        if not target or (target.startswith(SIDE) and module.startswith(SIDE)):
            continue
        assert not target.startswith(SIDE), f"promptkit.{module} imports the testing package at load time"
        target_layer = _layer_of(target)
        assert target_layer is not None, f"promptkit.{module} imports unknown promptkit.{target}"
        assert target_layer <= own, (
            f"promptkit.{module} (layer {own}) imports promptkit.{target} (layer {target_layer})"
        )


def test_import_is_light() -> None:
    code = f"import promptkit, sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == []


def test_testing_import_is_light() -> None:
    code = f"import promptkit.testing, sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == []


def _loaded_after(code: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with one of ``prefixes`` that a fresh interpreter has loaded after ``code``."""
    probe = f"{code}\nimport sys, json; print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    loaded: list[str] = json.loads(out)
    return loaded


# What the common entry point must not pay for: pydantic (until a model is used) and the
# few-shot search machinery with its embedders, indexes and tokenizers.
DEFERRED = (
    "pydantic",
    "pydantic_core",
    "promptkit._fewshot._selectors",
    "promptkit._fewshot._budget",
    "promptkit._fewshot._index",
    "promptkit._fewshot._persist",
    "promptkit._embeddings",
    "promptkit._tokens",
    "promptkit._tiktoken_files",
)
# ...and what a prompt alone (no output parser named) does not load either.
PROMPT_DEFERRED = (*DEFERRED, "promptkit._parsers._simple", "promptkit._parsers._json", "promptkit._parsers._extract")


def test_common_import_defers_pydantic_and_selectors() -> None:
    code = "from promptkit import Prompt, Template, PydanticParser, ChatTemplate"
    assert _loaded_after(code, DEFERRED) == []


def test_rendering_and_running_without_models_defers_pydantic() -> None:
    code = (
        "from promptkit import Prompt, ChatTemplate\n"
        "from promptkit.testing import MockBackend\n"
        "prompt = Prompt('{{ examples }} {{ x.a }} {{ y | join(\",\") }}', MockBackend(['ok']),"
        " examples=[{'q': '1'}], example_template='{{ q }}')\n"
        "assert prompt.run(x={'a': 1}, y=[1, 2]).value == 'ok'\n"
        "ChatTemplate([('system', 'be {{ tone }}'), ('user', '{{ q }}')]).render(tone='brief', q='hi')"
    )
    assert _loaded_after(code, ("pydantic", "promptkit._fewshot._selectors", "promptkit._tokens")) == []


def test_pydantic_loads_once_a_model_is_used() -> None:
    code = (
        "from pydantic import BaseModel\n"
        "from promptkit import PydanticParser, Template\n"
        "class City(BaseModel):\n    name: str\n"
        "assert PydanticParser(City).parse('{\"name\": \"Oslo\"}').name == 'Oslo'\n"
        "assert Template('{{ c.name }}').render(c=City(name='Oslo')) == 'Oslo'\n"
        "assert Template('{{ n }}', inputs={'n': int}).render(n='3') == '3'"
    )
    assert "pydantic.main" in _loaded_after(code, ("pydantic.main",))


def test_prompt_import_defers_parsers_beyond_the_base() -> None:
    assert _loaded_after("from promptkit import Prompt", PROMPT_DEFERRED) == []


def test_testing_import_defers_the_provider_server() -> None:
    assert _loaded_after("import promptkit.testing", ("promptkit.testing._server", "http.server", "ssl")) == []


@pytest.mark.parametrize("package", ["promptkit._fewshot", "promptkit._parsers", "promptkit.testing"])
def test_private_package_names_resolve_lazily(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError):
        _ = module.NoSuchName


def test_inputs_spec_resolves_lazily() -> None:
    import promptkit._templates as templates

    assert templates.InputsSpec is not None
    with pytest.raises(AttributeError):
        _ = templates.NoSuchName


def test_all_is_sorted_and_complete() -> None:
    names = promptkit.__all__
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(promptkit, name), name
    # "@..." names are pytest's assertion-rewriting helpers (the package holds the pytest plugin).
    skip = {"annotations", "backends", "testing"}
    public = {n for n in vars(promptkit) if not n.startswith(("_", "@")) and n not in skip}
    public -= {m for m, _ in _modules()}  # submodules that happen to be loaded
    assert public <= set(names), f"public but not in __all__: {sorted(public - set(names))}"


def test_lazy_names_are_public_and_resolve() -> None:
    lazy = promptkit._LAZY
    assert set(lazy) <= set(promptkit.__all__)
    for name in lazy:
        assert getattr(promptkit, name).__name__ == name
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = promptkit.Nope  # type: ignore[attr-defined]
    assert set(lazy) <= set(dir(promptkit))


def test_py_typed_is_shipped() -> None:
    assert (PACKAGE / "py.typed").exists()


def _doctest_modules() -> list[str]:
    names = ["promptkit"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="promptkit."):
        if info.name.endswith("pytest_plugin"):
            continue
        names.append(info.name)
    return names


class _DefiningModuleFinder(doctest.DocTestFinder):
    """Finds a class's examples in the module that defines it, though its ``__module__`` is public."""

    def _from_module(self, module: object, object: object) -> bool:  # doctest's signature
        if inspect.isclass(object):
            return getattr(module, "__name__", None) == defined_in(object)
        result: bool = super()._from_module(module, object)  # type: ignore[misc]
        return result


@pytest.mark.parametrize("name", _doctest_modules())
def test_docstring_examples_run(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra is not installed here
        pytest.fail(f"{name} failed to import: {exc}")
    finder = _DefiningModuleFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=dict(vars(module))):
        runner.run(test)
    assert runner.failures == 0


def test_class_docstrings_still_run_in_their_own_module() -> None:
    from promptkit import _errors

    found = {t.name for t in _DefiningModuleFinder().find(_errors, "promptkit._errors")}
    assert any(n.startswith("promptkit._errors.") and n.count(".") >= 2 for n in found), found


# -- public paths ---------------------------------------------------------------------------------

PUBLIC_PACKAGES = ("promptkit", "promptkit.backends", "promptkit.testing")


def _exported() -> list[tuple[str, str]]:
    return [(p, n) for p in PUBLIC_PACKAGES for n in importlib.import_module(p).__all__]


@pytest.mark.parametrize(("package", "name"), _exported(), ids=[f"{p}.{n}" for p, n in _exported()])
def test_public_names_show_a_public_module(package: str, name: str) -> None:
    obj = getattr(importlib.import_module(package), name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return  # UNSET, __version__: values, not definitions
    module = obj.__module__
    assert not any(part.startswith("_") for part in module.split(".")), f"{package}.{name} shows {module}"
    # the path it shows must resolve to the very object (pickle and help() look it up there)
    assert getattr(importlib.import_module(module), obj.__qualname__) is obj
    assert "._" not in repr(obj)


def test_errors_pickle_through_their_public_path() -> None:
    error = promptkit.ParseError("no JSON found", text="oops", expected="JSON")
    assert type(error).__module__ == "promptkit"
    data = pickle.dumps(error)
    back = pickle.loads(data)
    assert type(back) is promptkit.ParseError
    assert (str(back), back.text) == (str(error), "oops")
    for name in promptkit.__all__:
        cls = getattr(promptkit, name)
        if inspect.isclass(cls) and issubclass(cls, promptkit.PromptkitError) and cls is not promptkit.ParseError:
            try:
                instance = cls("message")
            except TypeError:  # needs keyword context; ParseError above covers that shape
                continue
            assert type(pickle.loads(pickle.dumps(instance))) is cls


def test_dir_lists_no_future_flags() -> None:
    for package in ("promptkit", "promptkit._fewshot", "promptkit._parsers"):  # the lazy namespaces
        assert "annotations" not in dir(importlib.import_module(package)), package
