"""Public names report their public path (``gw.Worker``), as trio's and httpcore's do."""

from __future__ import annotations

import sys
from types import FunctionType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ("publish",)


def publish(namespace: dict[str, Any], names: Iterable[str], module: str = "gw") -> None:
    """Set ``__module__`` of the classes and functions ``names`` in ``namespace`` to ``module``.

    String annotations are resolved first in the module that defines them
    (msgspec resolves a Struct's annotations in the namespace of its
    ``__module__``); those naming type-checking-only imports stay strings.
    """
    for name in names:
        obj = namespace[name]
        origin = getattr(obj, "__module__", "") or ""
        if not origin.startswith(module + "."):
            continue
        if not isinstance(obj, (type, FunctionType)):
            continue
        if isinstance(obj, type):
            _resolve_annotations(obj, vars(sys.modules[origin]))
        obj.__module__ = module


def _resolve_annotations(cls: type, module_globals: dict[str, Any]) -> None:
    # The class's own annotations only (not inherited ones), as inspect.get_annotations
    # gives, without importing inspect.
    own = cls.__dict__.get("__annotations__")  # noqa: RUF063
    if not own:
        return
    resolved = {}
    for field, annotation in own.items():
        value = annotation
        if isinstance(annotation, str):
            try:
                value = eval(annotation, module_globals, dict(vars(cls)))
            except Exception:  # a type-checking-only name: leave it as written
                value = annotation
        resolved[field] = value
    cls.__annotations__ = resolved
