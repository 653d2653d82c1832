"""Autobahn's debug-log arguments are lazy, and format to the text they always had."""

from __future__ import annotations

import ast
import importlib
import inspect

from autobahn import util
from twisted.internet.task import Clock

from meetplatform.registry import Registry
from meetplatform.signalling import SignallingService
from meetplatform.signalling.autobahn_debug import (
    MODULES,
    NAMES,
    LazyText,
    lazy,
    make_debug_arguments_lazy,
)
from tests.support import make_settings

LOG_LEVELS = {"trace", "debug", "info", "warn", "error", "critical", "failure"}


def _is_log_call(node: ast.Call) -> bool:
    """``<anything>.log.<level>(...)``."""
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr in LOG_LEVELS
            and isinstance(func.value, ast.Attribute) and func.value.attr == "log")


def test_autobahn_uses_the_helpers_only_as_log_arguments() -> None:
    """Every call of ``hltype``/``hlval`` in the patched modules is a keyword argument of
    a log call: a lazy value is only ever formatted, never concatenated or compared."""
    for name in MODULES:
        tree = ast.parse(inspect.getsource(importlib.import_module(name)))
        as_log_argument: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_log_call(node):
                as_log_argument.update(id(k.value) for k in node.keywords)
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Name) and node.func.id in NAMES]
        assert calls, name  # the modules still use them (else this change is moot)
        for call in calls:
            assert id(call) in as_log_argument, (name, call.lineno)


def test_a_lazy_value_formats_to_the_eager_text() -> None:
    class Thing:
        def method(self) -> None: ...

    thing = Thing()
    for function, args in ((util.hltype, (thing.method,)), (util.hlval, (1234,)),
                           (util.hlval, ("peer",))):
        eager = function(*args)
        deferred = lazy(function)(*args)
        assert isinstance(deferred, LazyText)
        assert str(deferred) == eager
        assert f"<{deferred}>" == f"<{eager}>"
        assert f"{deferred:>40}" == f"{eager:>40}"
        assert repr(deferred) == repr(eager)


def test_the_signalling_makes_them_lazy_once_and_leaves_foreign_names_alone() -> None:
    clock = Clock()
    settings = make_settings(public_url="http://127.0.0.1:1")
    SignallingService(clock, settings, Registry(clock))
    for name in MODULES:
        module = importlib.import_module(name)
        for helper in NAMES:
            patched = getattr(module, helper)
            assert patched.__wrapped__ is getattr(util, helper)
            make_debug_arguments_lazy()  # idempotent: not wrapped twice
            assert getattr(module, helper) is patched
