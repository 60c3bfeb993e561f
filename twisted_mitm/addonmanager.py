# -*- test-case-name: tests.test_addonmanager -*-
"""
The addon chain: script loading, C{Loader.add_option}, and running hooks.

Addons are objects (or script modules) whose attributes named after hooks
(L{twisted_mitm.hooks}) handle them; an addon's C{addons} list nests further addons,
visited depth-first. L{AddonManager.trigger} calls the handlers one after the other,
waiting for any Deferred or coroutine a handler returns, and contains their failures:
each is logged with the handler's file and line, and the next handler still runs. A
hook about a flow that a handler intercepted (C{flow.intercept()}) ends only when the
flow is resumed, so the proxy holds the flow meanwhile, as mitmproxy does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import sys
import traceback
import types
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Iterator

import twisted
from twisted.internet.asyncioreactor import AsyncioSelectorReactor
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from twisted_mitm.exceptions import AddonError, OptionsError
from twisted_mitm.flow import Flow
from twisted_mitm.hooks import ConfigureHook, DoneHook, Hook, LoadHook, all_hooks, mitmproxy_hooks
from twisted_mitm.loader import Loader

if TYPE_CHECKING:
    from twisted_mitm.loader import AddonHost

Handler = Callable[..., Any]

_log = Logger()

# Frames in these places are how a handler got called, not what the addon did.
_MACHINERY = (
    os.path.dirname(twisted.__file__) + os.sep,
    os.path.dirname(asyncio.__file__) + os.sep,
    __file__,
)


def _get_name(addon: object) -> str:
    return getattr(addon, "name", None) or type(addon).__name__.lower()


def traverse(chain: Iterable[object]) -> Iterator[object]:
    """Yield every addon of C{chain}, each followed by its nested C{addons}, depth-first."""
    for addon in chain:
        yield addon
        children = getattr(addon, "addons", None)
        if isinstance(children, (list, tuple)):
            yield from traverse(children)


def _handlers_in(chain: Iterable[object], name: str) -> tuple[Handler, ...]:
    found = (getattr(addon, name, None) for addon in traverse(chain))
    return tuple(handler for handler in found if callable(handler))


class AddonManager:
    """
    The chain of addons and the hook dispatcher.

    C{_handlers} caches, per hook name, the handlers found along the chain so that a hook
    nobody handles costs a dictionary lookup; it is rebuilt after L{add} and L{remove}.
    """

    def __init__(self, master: AddonHost) -> None:
        self.master = master
        self.chain: list[object] = []
        self.lookup: dict[str, object] = {}
        self._handlers: dict[str, tuple[Handler, ...]] = {}
        master.options.subscribe(self._configure_all)

    def get(self, name: str) -> object | None:
        """The addon with this C{name} attribute (else lower-case class name), if any."""
        return self.lookup.get(name)

    def add(self, *addons: object) -> None:
        """
        Append addons to the chain; each gets C{load}, its C{@command.command} methods
        registered, then deferred C{--set} values for the options it declared, then
        C{configure} with every option name.

        @raise OptionsError: an addon's C{configure} refused the options.
        @raise AddonError: an addon's name is taken, or its C{load}/C{configure} is async.
        """
        for addon in addons:
            self._add(addon)

    def _add(self, addon: object) -> None:
        self._load(addon, replacing=None)
        self.chain.append(addon)
        self._index(addon)
        self._configure(addon)

    def _load(self, addon: object, replacing: object | None) -> None:
        """Check the names of C{addon} (those of C{replacing} are free), warn about hooks
        that are never called, run C{load}, register commands, apply deferred C{--set}s."""
        free = {_get_name(a) for a in traverse([replacing])} if replacing is not None else set()
        for name in map(_get_name, traverse([addon])):
            if name in self.lookup and name not in free:
                raise AddonError(f"an addon called {name!r} already exists")
        for nested in traverse([addon]):
            _warn_unimplemented_hooks(nested)
        self._invoke_now(_handlers_in([addon], LoadHook.name), LoadHook(Loader(self.master)))
        for nested in traverse([addon]):
            self.master.commands.collect_commands(nested)
        self.master.options.process_deferred()

    def _configure(self, addon: object) -> None:
        configure = _handlers_in([addon], ConfigureHook.name)
        self._invoke_now(configure, ConfigureHook(self.master.options.keys()))

    def _index(self, addon: object) -> None:
        self.lookup.update((_get_name(a), a) for a in traverse([addon]))
        self._handlers.clear()

    def _unindex(self, addon: object) -> None:
        for nested in traverse([addon]):
            self.lookup.pop(_get_name(nested), None)
        self._handlers.clear()

    def remove(self, addon: object) -> Deferred[None]:
        """Take an addon (and its nested addons) out of the chain and run its C{done} hook."""
        self._position(addon)
        self.chain = [a for a in self.chain if a is not addon]
        self._unindex(addon)
        return self.invoke_addon(addon, DoneHook())

    def replace(self, old: object, new: object) -> Deferred[None]:
        """
        Put C{new} in the place of C{old} (a reloaded script): C{new} gets C{load} and
        C{configure} first, and only if they succeed does it take the place, and C{old}
        get its C{done} hook.

        @raise OptionsError: C{new}'s C{configure} refused the options; C{old} stays.
        @raise AddonError: as for L{add}; C{old} stays.
        """
        position = self._position(old)
        self._load(new, replacing=old)
        self._configure(new)
        self.chain[position] = new
        self._unindex(old)
        self._index(new)
        return self.invoke_addon(old, DoneHook())

    def invoke_addon(self, addon: object, hook: Hook) -> Deferred[None]:
        """Run C{hook} on one addon (and its nested addons) only, as L{trigger} does on all."""
        return self._run(_handlers_in([addon], hook.name), hook, 0)

    def _position(self, addon: object) -> int:
        for position, candidate in enumerate(self.chain):
            if candidate is addon:
                return position
        raise AddonError(f"no such addon: {_get_name(addon)}")

    def trigger(self, hook: Hook) -> Deferred[None]:
        """
        Call C{hook} on every addon in chain order, each after the previous one's Deferred
        or coroutine finished. The result fires once all have run and the hook's flow, if
        it was intercepted, has been resumed; it never fails.
        """
        handlers = self._handlers_for(hook.name)
        if not handlers:
            return _held(hook)
        return self._run(handlers, hook, 0)

    def _handlers_for(self, name: str) -> tuple[Handler, ...]:
        try:
            return self._handlers[name]
        except KeyError:
            handlers = self._handlers[name] = _handlers_in(self.chain, name)
            return handlers

    def _run(self, handlers: tuple[Handler, ...], hook: Hook, start: int) -> Deferred[None]:
        args = hook.args()
        for index in range(start, len(handlers)):
            waiting = self._call(handlers[index], hook, args)
            if waiting is not None:
                rest = index + 1
                return waiting.addCallback(lambda _: self._run(handlers, hook, rest))
        return _held(hook)

    def _call(self, handler: Handler, hook: Hook, args: list[Any]) -> Deferred[None] | None:
        """Call one handler; return a Deferred only if it has to be waited for."""
        try:
            result = handler(*args)
        except Exception:
            _log_failure(handler, hook, Failure())
            return None
        if isinstance(result, Deferred):
            waiting = result
        elif inspect.isawaitable(result):
            waiting = _deferred_from_awaitable(result)
        else:
            return None
        return waiting.addCallbacks(lambda _: None, lambda f: _log_failure(handler, hook, f))

    def _invoke_now(self, handlers: tuple[Handler, ...], hook: Hook) -> None:
        """Run a hook that must finish synchronously (C{load}, C{configure})."""
        for handler in handlers:
            try:
                result = handler(*hook.args())
            except (OptionsError, AddonError):
                raise
            except Exception:
                _log_failure(handler, hook, Failure())
                continue
            if inspect.iscoroutine(result):
                result.close()
            if isinstance(result, Deferred) or inspect.isawaitable(result):
                raise AddonError(f"{_where(handler, None)}: the {hook.name} hook must not be async")

    def _configure_all(self, updated: set[str]) -> None:
        self._invoke_now(self._handlers_for(ConfigureHook.name), ConfigureHook(updated))


def _warn_unimplemented_hooks(addon: object) -> None:
    """Warn about each handler of a mitmproxy hook that this proxy never calls."""
    for name in sorted(mitmproxy_hooks - set(all_hooks)):
        handler = getattr(addon, name, None)
        if callable(handler):
            _log.warn(
                "{where}: twisted_mitm does not implement mitmproxy's {hook} hook; this handler will never be called",
                where=_where(handler, None),
                hook=name,
            )


def _held(hook: Hook) -> Deferred[None]:
    """Fires once the flow C{hook} is about, if any, is not intercepted."""
    flow = getattr(hook, "flow", None)
    if isinstance(flow, Flow):
        return flow.resumed()
    return succeed(None)


def _deferred_from_awaitable(awaitable: Awaitable[Any]) -> Deferred[Any]:
    """
    Wait for a handler's coroutine. On the asyncio reactor it runs as an asyncio task, so
    C{asyncio.sleep} and C{asyncio.create_task} work in it as they do under mitmproxy.
    """
    from twisted.internet import reactor  # whichever reactor runs; only consulted here

    if isinstance(reactor, AsyncioSelectorReactor):
        loop = asyncio.get_event_loop()
        return Deferred.fromFuture(asyncio.ensure_future(awaitable, loop=loop))
    return Deferred.fromCoroutine(_awaited(awaitable))


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _log_failure(handler: Handler, hook: Hook, failure: Failure) -> None:
    """Log a handler's failure with its file and line, the traceback cut to its own frames."""
    tb = failure.getTracebackObject()
    if isinstance(tb, types.TracebackType):
        tb = _addon_frames(tb)
        failure = Failure(failure.value, failure.type, tb)
    _log.failure(
        "{where}: error in {hook} hook: {error}",
        failure=failure,
        level=LogLevel.error,
        where=_where(handler, tb),
        hook=hook.name,
        error=_one_line(failure.value),
    )


def _addon_frames(tb: types.TracebackType) -> types.TracebackType:
    """Drop the leading frames that belong to Twisted, asyncio or this module."""
    start: types.TracebackType | None = tb
    while start is not None and start.tb_frame.f_code.co_filename.startswith(_MACHINERY):
        start = start.tb_next
    return start or tb


def _where(handler: Handler, tb: Any) -> str:
    """C{file:line} of the innermost traceback frame in the handler's file, else its C{def}."""
    code = getattr(inspect.unwrap(getattr(handler, "__func__", handler)), "__code__", None)
    if code is None:
        return repr(handler)
    frames = traceback.extract_tb(tb) if tb is not None else []
    lines = [frame.lineno for frame in frames if frame.filename == code.co_filename]
    return f"{code.co_filename}:{lines[-1] if lines else code.co_firstlineno}"


def _one_line(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def load_script(path: str) -> types.ModuleType:
    """
    Import a script file as an addon, under a module name of its own. Its directory is on
    C{sys.path} while it is imported, so it can import modules beside it.

    @raise AddonError: one line, C{"script not found: PATH"} or
        C{"PATH:LINE: ExceptionType: message"} when importing it failed.
    """
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise AddonError(f"script not found: {path}")
    filename = os.path.abspath(path)
    module_name = _module_name(filename)
    spec = importlib.util.spec_from_file_location(module_name, filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module
    sys.path.insert(0, os.path.dirname(filename))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        if previous is None:
            del sys.modules[module_name]
        else:  # a version of this script that still runs
            sys.modules[module_name] = previous
        raise AddonError(_import_failure(path, filename, e)) from None
    finally:
        sys.path.remove(os.path.dirname(filename))
    if not getattr(module, "name", None):
        module.name = path  # type: ignore[attr-defined]
    return module


def _module_name(filename: str) -> str:
    """C{__twisted_mitm_script__.STEM}, numbered when another file already has that name."""
    stem = os.path.splitext(os.path.basename(filename))[0]
    name, number = f"__twisted_mitm_script__.{stem}", 1
    while getattr(sys.modules.get(name), "__file__", filename) != filename:
        number += 1
        name = f"__twisted_mitm_script__.{stem}_{number}"
    return name


def _import_failure(path: str, filename: str, error: Exception) -> str:
    if isinstance(error, SyntaxError) and error.filename == filename:
        line, message = error.lineno, error.msg
    else:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == filename]
        line, message = (frames[-1].lineno if frames else None), str(error)
    where = f"{path}:{line}" if line else path
    return f"{where}: {type(error).__name__}: {message}"
