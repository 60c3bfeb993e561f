# -*- test-case-name: tests.test_script_reload -*-
"""The C{scripts} option: load each script as an addon, and reload it when its file changes.

As in mitmproxy, each file's modification time is looked at every second once the proxy
runs. A changed file is imported again; if that works, the new version takes the old
one's place in the addon chain (C{load} and C{configure} on the new, C{done} on the old,
C{running} on the new); if it fails, the error is logged with file and line and the old
version keeps running. A file that disappears is unloaded and dropped from C{scripts}.

At start-up a script that cannot be loaded stops the proxy (SPEC §2); once it runs, a
script added with C{set scripts=...} that cannot be loaded is logged and retried when
its file changes.
"""

from __future__ import annotations

import os
import types
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from twisted_mitm import ctx
from twisted_mitm.addonmanager import load_script
from twisted_mitm.exceptions import AddonError, OptionsError
from twisted_mitm.hooks import RunningHook

log = Logger()

#: Seconds between two looks at the scripts' files.
RELOAD_INTERVAL = 1.0


@dataclass
class Script:
    """One entry of C{scripts}: its file, the module running (if any), the file's time."""

    path: str
    module: types.ModuleType | None
    mtime: float | None


def _mtime(path: str) -> float | None:
    """The file's modification time; C{None} if it is gone."""
    try:
        return os.stat(os.path.expanduser(path)).st_mtime
    except FileNotFoundError:
        return None


class ScriptLoader:
    """Keeps the addon chain's scripts in line with the C{scripts} option and their files.

    @ivar scripts: the scripts by path (each with its module, if it loaded).
    """

    def __init__(self, clock: IReactorTime | None = None) -> None:
        self.scripts: dict[str, Script] = {}
        self._running = False
        self._watch = LoopingCall(self.check_files)
        if clock is not None:
            self._watch.clock = clock

    def configure(self, updated: set[str]) -> None:
        if "scripts" not in updated:
            return
        paths = ctx.options.scripts
        duplicates = sorted({path for path in paths if paths.count(path) > 1})
        if duplicates:
            raise OptionsError(f"scripts: {', '.join(duplicates)} given more than once")
        for path in [path for path in self.scripts if path not in paths]:
            self._unload(self.scripts.pop(path))
        for path in paths:
            if path not in self.scripts:
                self.scripts[path] = self._load(path)

    def running(self) -> None:
        self._running = True
        if not self._watch.running:
            self._watch.start(RELOAD_INTERVAL, now=False)

    def done(self) -> None:
        if self._watch.running:
            self._watch.stop()

    def check_files(self) -> None:
        """Reload every script whose file changed; unload those whose file is gone."""
        for script in list(self.scripts.values()):
            mtime = _mtime(script.path)
            if mtime is None:
                log.warn("{path}: the script file is gone; unloading it", path=script.path)
                ctx.options.scripts = [path for path in ctx.options.scripts if path != script.path]
            elif mtime != script.mtime:
                script.mtime = mtime
                self._reload(script)

    def _load(self, path: str) -> Script:
        mtime = _mtime(path)
        try:
            module = load_script(path)
            ctx.master.addons.add(module)
        except (AddonError, OptionsError) as error:
            if not self._running:
                raise
            log.error("{error}", error=error)
            return Script(path, None, mtime)
        self._announce_running(module)
        return Script(path, module, mtime)

    def _reload(self, script: Script) -> None:
        log.info("{path}: the script changed; reloading it", path=script.path)
        try:
            module = load_script(script.path)
            if script.module is None:
                ctx.master.addons.add(module)
            else:
                ctx.master.addons.replace(script.module, module)
        except (AddonError, OptionsError) as error:
            kept = "the previous version keeps running" if script.module is not None else "the script is not loaded"
            log.error("{error}; {kept}", error=error, kept=kept)
            return
        script.module = module
        self._announce_running(module)

    def _unload(self, script: Script) -> None:
        if script.module is not None:
            ctx.master.addons.remove(script.module)

    def _announce_running(self, module: types.ModuleType) -> None:
        """A script loaded while the proxy runs gets the C{running} hook the others got at start."""
        if self._running:
            ctx.master.addons.invoke_addon(module, RunningHook())
