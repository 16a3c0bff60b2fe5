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
    "genai_prices",
)

# -- layering ---------------------------------------------------------------------------------------
# The architecture's layer table, by module (dotted, relative to the package). A module imports
# only from its own layer or below; imports within a layer must not form a cycle. Entries whose
# file does not exist yet (the backends split, strategies) are planned homes, not errors; a real
# module missing from the table is an error.
LAYERS: dict[str, int] = {
    "_errors": 0,
    "_utils": 0,
    "_messages": 1,
    "_images": 1,
    "_image_tokens": 1,
    "_tokens": 2,
    "_fitting": 2,
    "_tiktoken_files": 2,
    "_embeddings": 2,
    "_cost": 2,
    "_tracing": 2,
    # Today the package's __init__ holds the backend contract. Once it is split into _contract,
    # _streams, _gate and _factory, the __init__ only re-exports them and moves to layer 4.
    "backends": 4,  # the package init re-exports the factory
    "backends._contract": 2,
    "backends._streams": 2,
    "backends._gate": 2,
    "backends._preview": 2,
    "backends._display": 2,
    "backends._wrapper": 3,
    "backends._retry": 3,
    "backends._http": 3,
    "backends._sdkbase": 3,
    "backends._openai_wire": 3,
    "backends._cache": 3,
    "backends._fallback": 3,
    "backends._ratelimit": 3,
    "backends._record": 3,
    "backends._cost": 3,
    "_templates": 3,
    "_parsers": 3,
    "_fewshot": 4,
    "backends.openai": 4,
    "backends._openai_compatible": 4,
    "backends.anthropic": 4,
    "backends._factory": 4,
    "backends._batchapi": 4,
    "_strategies": 5,
    "_prompt": 6,
    "_result": 6,
    "_run": 6,
    "_batch": 7,
    "_batchapi": 7,
    "_files": 7,
    "_ray": 7,
    "_eval": 8,
    "": 9,  # promptkit/__init__.py: re-exports every layer
    "__main__": 9,
    "cli": 9,
    "_cli": 9,
    "integrations": 9,
}
# Packages whose every module shares the package's layer.
LAYERED_PACKAGES = (
    "_templates",
    "_parsers",
    "_fewshot",
    "_strategies",
    "_tracing",
    "_batch",
    "_batchapi",
    "_eval",
    "_cli",
    "integrations",
)
SIDE = "testing"  # test doubles: may import layers 0-4; the core never imports them at load time
SIDE_MAX_LAYER = 4

# Imports against the direction or closing a cycle, each deliberate, lazy (inside a function)
# and with its reason. (importer, imported): reason
ALLOWED_LAZY: dict[tuple[str, str], str] = {
    ("_utils", "_errors"): "require() raises MissingDependencyError; _errors imports _utils (redact) at load time",
    ("_prompt", "_batch"): "Prompt.batch/abatch/estimate_batch are the batch engine's entry points on the prompt; "
    "the engine builds on Prompt.run/arun, so it sits a layer above and loads on the first batch",
    ("_prompt", "_batchapi"): "Prompt.submit_batch is the provider batch jobs' entry point on the prompt; the jobs "
    "drive Prompt's runs, so they sit a layer above and load on the first submit",
    ("_fewshot._fixed", "_fewshot._persist"): "save() loads the persistence code, which rebuilds selectors",
    ("_fewshot._selectors", "_fewshot._persist"): "save() loads the persistence code, which rebuilds selectors",
    ("testing.pytest_plugin", "_eval._gate_run"): "the promptkit_gate fixture runs an evaluation; the plugin loads "
    "in every test session and imports only layers 0-4, so the evaluation loads when a test asks for a gate",
}


def _layer_of(module: str) -> int | None:
    """The layer of a dotted module name relative to the package ('' is the package itself)."""
    if module in LAYERS:
        return LAYERS[module]
    for package in (*LAYERED_PACKAGES, SIDE):
        if module.startswith(package + "."):
            return SIDE_MAX_LAYER if package == SIDE else LAYERS[package]
    if module == SIDE:
        return SIDE_MAX_LAYER
    return None


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


MODULES = dict(_modules())


def _import_targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The promptkit modules an import statement loads, relative to the package ('' = promptkit)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if a.name == "promptkit" or a.name.startswith("promptkit.")]
        return [n.removeprefix("promptkit").removeprefix(".") for n in names]
    if node.level == 0:
        name = node.module or ""
        if name != "promptkit" and not name.startswith("promptkit."):
            return []
        base = name.removeprefix("promptkit").removeprefix(".")
    else:
        parts = module.split(".") if module else []
        if not is_package:
            parts = parts[:-1]
        if node.level > 1:
            parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, *([node.module] if node.module else [])])
    # `from . import _server` loads the submodule, not only the package
    subs = [f"{base}.{a.name}" if base else a.name for a in node.names]
    found = [s for s in subs if s in MODULES]
    return found or [base]


def _type_only_nodes(tree: ast.Module) -> set[int]:
    """Ids of the imports inside ``if TYPE_CHECKING:`` blocks (they never run)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                found.update(id(n) for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return found


def _imports(module: str, path: Path, *, runtime_only: bool = False) -> list[tuple[str, int]]:
    """Every promptkit import in a module, at any depth: (target module, line).

    ``runtime_only`` leaves out the imports under ``if TYPE_CHECKING:``: the layer check counts
    them (a type is a dependency too), the cycle check does not (they are never executed).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    skip = _type_only_nodes(tree) if runtime_only else set()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skip:
            out.extend((t, node.lineno) for t in _import_targets(module, is_package, node))
    return sorted(out, key=lambda item: item[1])


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(ROOT)}:{line}"


def _graph() -> dict[str, dict[str, int]]:
    """module -> {imported module: first line}, without self-imports and the allowed exceptions."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in MODULES.items():
        edges = graph.setdefault(module, {})
        for target, line in _imports(module, path, runtime_only=True):
            if target != module and (module, target) not in ALLOWED_LAZY:
                edges.setdefault(target, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _layer_violations() -> list[str]:
    problems = []
    for module, path in MODULES.items():
        own = _layer_of(module)
        if own is None:
            problems.append(
                f"{_where(module, 1)}: promptkit.{module} has no layer; add it to LAYERS (and ARCHITECTURE.md)"
            )
            continue
        in_side = module == SIDE or module.startswith(SIDE + ".")
        for target, line in _imports(module, path):
            if (module, target) in ALLOWED_LAZY or target == module:
                continue
            target_side = target == SIDE or target.startswith(SIDE + ".")
            if target_side and not in_side:
                problems.append(
                    f"{_where(module, line)}: promptkit.{module} imports the test doubles (promptkit.{target})"
                )
                continue
            layer = _layer_of(target)
            if layer is None:
                problems.append(f"{_where(module, line)}: promptkit.{module} imports unknown promptkit.{target}")
            elif layer > own:
                where = _where(module, line)
                problems.append(f"{where}: promptkit.{module} (layer {own}) imports promptkit.{target} (layer {layer})")
    return problems


def test_every_module_has_a_layer_and_imports_only_point_down() -> None:
    problems = _layer_violations()
    assert not problems, "layering violations:\n" + "\n".join(problems)


def test_imports_form_no_cycle() -> None:
    graph = _graph()
    problems = []
    for component in _cycles(graph):
        members = set(component)
        edges = [
            f"  {_where(a, graph[a][b])}: promptkit.{a or '__init__'} -> promptkit.{b or '__init__'}"
            for a in component
            for b in sorted(graph[a])
            if b in members
        ]
        problems.append("cycle between " + ", ".join(f"promptkit.{m}" for m in component) + ":\n" + "\n".join(edges))
    assert not problems, "\n".join(problems)


def test_allowed_lazy_imports_are_still_needed_and_lazy() -> None:
    for (importer, target), reason in ALLOWED_LAZY.items():
        assert reason
        if importer not in MODULES:
            continue
        tree = ast.parse(MODULES[importer].read_text(encoding="utf-8"))
        top = {id(n) for n in tree.body}
        is_package = MODULES[importer].name == "__init__.py"
        uses = [
            node
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom)) and target in _import_targets(importer, is_package, node)
        ]
        assert uses, f"{importer} -> {target} is listed but no longer imported: remove it from ALLOWED_LAZY"
        assert all(id(n) not in top for n in uses), f"{importer} -> {target} must stay lazy (inside a function)"


def test_the_layer_check_sees_nested_and_plain_imports(tmp_path: Path) -> None:
    source = (
        "import promptkit._prompt\n"
        "def f():\n"
        "    from .. import _files\n"
        "    import promptkit.testing._mock\n"
        "    from promptkit._errors import ParseError\n"
    )
    path = tmp_path / "x.py"
    path.write_text(source, encoding="utf-8")
    targets = [t for t, _ in _imports("_fewshot._x", path)]
    assert targets == ["_prompt", "_files", "testing._mock", "_errors"]
    assert _cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert _layer_of("_fewshot._x") == 4
    assert _layer_of("backends._new_thing") is None  # a new backends module must be placed in the table


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
    aliases = {"Plan"}  # a type alias (of Generator): it has no name of its own
    for name in lazy:
        value = getattr(promptkit, name)
        if name in aliases:
            assert value is getattr(importlib.import_module(lazy[name], "promptkit"), name)
        else:
            assert value.__name__ == name
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
