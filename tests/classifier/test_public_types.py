"""No ``Any`` in the public signatures of the ``classifier`` package (#11).

Every module of the package is imported and every public function, method, property and
annotated class attribute (dataclass fields, protocol members) defined there has its type hints
resolved with ``typing.get_type_hints``; the test fails on any ``typing.Any`` in them, however
deeply nested or hidden behind an alias. Names imported only under ``TYPE_CHECKING`` resolve to a
stand-in, so they neither break the walk nor count as ``Any``.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import pkgutil
import types
import typing
from collections.abc import Callable, Iterator
from typing import ForwardRef

import numpy as np

import classifier

# Dunder methods whose signatures callers see (the rest are protocol plumbing).
_PUBLIC_DUNDERS = frozenset({"__init__", "__call__"})


class _StandInMeta(type):
    """A name known only to the type checker: any attribute or subscript of it is one too."""

    def __getattr__(cls, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return _stand_in(f"{cls.__name__}.{name}")

    def __getitem__(cls, item: object) -> type:
        return cls

    def __or__(cls, other: object) -> object:
        return typing.Union[cls, other]  # noqa: UP007 (a stand-in is no type for `|`)

    def __ror__(cls, other: object) -> object:
        return typing.Union[other, cls]  # noqa: UP007


def _stand_in(name: str) -> type:
    return _StandInMeta(name, (), {})


class _TypeCheckingNames(dict[str, object]):
    """A module's namespace in which names imported only under ``TYPE_CHECKING`` still resolve."""

    def __missing__(self, name: str) -> object:
        if hasattr(builtins, name):
            return getattr(builtins, name)
        return _stand_in(name)


def _modules() -> Iterator[types.ModuleType]:
    yield classifier
    for info in pkgutil.walk_packages(classifier.__path__, "classifier."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield importlib.import_module(info.name)


def _is_public(name: str) -> bool:
    return not name.startswith("_") or name in _PUBLIC_DUNDERS


def _hints(obj: object, module: types.ModuleType) -> dict[str, object]:
    namespace = _TypeCheckingNames(vars(module))
    return typing.get_type_hints(obj, localns=namespace, include_extras=True)


def _own_annotations(cls: type, module: types.ModuleType) -> dict[str, object]:
    """The annotated attributes a class itself declares (not its bases'), resolved."""
    own = vars(cls).get("__annotations__", {})
    holder = types.SimpleNamespace(__annotations__=dict(own), __module__=module.__name__)
    hints = _hints(holder, module)
    return {name: hint for name, hint in hints.items() if not name.startswith("_")}


def _callables(cls: type) -> Iterator[tuple[str, Callable[..., object]]]:
    for name, member in vars(cls).items():
        if not _is_public(name):
            continue
        if isinstance(member, staticmethod | classmethod):
            yield name, member.__func__
        elif isinstance(member, property) and member.fget is not None:
            yield name, member.fget
        elif inspect.isfunction(member):
            yield name, member


def _signatures() -> Iterator[tuple[str, str, object]]:
    """``(where, what, hint)`` for every public annotation in the package."""
    for module in _modules():
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            where = f"{module.__name__}.{name}"
            if inspect.isfunction(obj):
                for what, hint in _hints(obj, module).items():
                    yield where, what, hint
            elif inspect.isclass(obj):
                for what, hint in _own_annotations(obj, module).items():
                    yield where, what, hint
                for method_name, method in _callables(obj):
                    for what, hint in _hints(method, module).items():
                        yield f"{where}.{method_name}", what, hint
        for name, hint in _own_module_annotations(module).items():
            yield module.__name__, name, hint


def _own_module_annotations(module: types.ModuleType) -> dict[str, object]:
    own = {
        k: v for k, v in vars(module).get("__annotations__", {}).items() if not k.startswith("_")
    }
    holder = types.SimpleNamespace(__annotations__=own, __module__=module.__name__)
    return _hints(holder, module)


def _contains_any(hint: object, seen: set[int]) -> bool:
    if hint is typing.Any:
        return True
    if id(hint) in seen or isinstance(hint, ForwardRef | str):
        return False  # a recursive alias met again, or a name the checker alone knows
    seen.add(id(hint))
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin is np.ndarray:
        args = args[1:]  # numpy's own shape parameter is Any; the dtype is ours
    elif origin is np.dtype:
        pass
    elif origin is not None and getattr(origin, "__module__", "").startswith("numpy"):
        return False  # numpy's protocols (inside npt.ArrayLike) are numpy's business
    if origin is typing.Annotated:
        args = args[:1]
    return any(_contains_any(arg, seen) for arg in args if arg is not Ellipsis)


def test_the_walk_sees_the_learners() -> None:
    wheres = {where for where, _, _ in _signatures()}

    assert "classifier.learners.selection.Candidate.to_meta" in wheres
    assert "classifier.artifacts.pack" in wheres
    assert "classifier.protocols.WarmStartLearner.warm_started" in wheres


def test_any_is_found_however_it_is_written() -> None:
    Alias = typing.Union[int, typing.Any]  # noqa: UP007 (written the old way on purpose)

    assert _contains_any(dict[str, typing.Any], set())
    assert _contains_any(Callable[[str], typing.Any], set())
    assert _contains_any(list[Alias] | None, set())
    assert _contains_any(np.ndarray[typing.Any, np.dtype[typing.Any]], set())
    assert not _contains_any(np.ndarray[typing.Any, np.dtype[np.float32]], set())
    assert not _contains_any(Callable[..., int], set())


def test_no_any_in_public_signatures() -> None:
    offenders = sorted(
        f"{where} {what}: {hint!r}"
        for where, what, hint in _signatures()
        if _contains_any(hint, set())
    )

    assert offenders == []
