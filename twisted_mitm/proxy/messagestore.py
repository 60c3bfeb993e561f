# -*- test-case-name: tests.test_messagestore -*-
"""The messages live WebSocket and TCP flows keep for scripts, within byte budgets.

A flow records every message in its list (C{flow.websocket.messages}, C{flow.messages});
this module decides how long their payloads stay. Each live flow has a L{FlowMessages}
with its own budget (C{websocket_max_stored_bytes}, C{tcp_max_stored_bytes}), and all of
them share the proxy's L{MessageStore}, bounded by C{total_max_stored_bytes}. Past
either budget the oldest payloads are forgotten first, in the way the flow's kind says
(a WebSocket message keeps its place with a marker as content, a TCP message leaves the
list). A message enters the store only once it was forwarded and its hook returned, so
what is forwarded, and what a running hook sees, is never a marker. When a flow ends it
leaves the store: what it kept stays with the flow, for addons still holding it, but no
longer counts against live flows.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TOTAL_OPTION = "total_max_stored_bytes"

Forget = Callable[[Any, int, str], None]
"""How a flow drops one message's payload: C{forget(message, size, option_exceeded)}."""


@dataclass(frozen=True)
class _Entry:
    owner: FlowMessages
    message: Any
    size: int


class MessageStore:
    """The payload bytes kept by all live flows, at most L{budget} together; oldest forgotten first."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.size = 0
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next_key = 0

    def for_flow(self, budget: int, option: str, forget: Forget, max_count: int | None = None) -> FlowMessages:
        """A live flow's share, bounded by C{budget} (the option named C{option})."""
        return FlowMessages(self, budget, option, forget, max_count)

    def set_budget(self, budget: int) -> None:
        """Change the total budget (an option changed), forgetting the oldest if now over it."""
        self.budget = budget
        self._shrink()

    def _add(self, entry: _Entry) -> int:
        key = self._next_key
        self._next_key += 1
        self._entries[key] = entry
        self.size += entry.size
        return key

    def _remove(self, key: int) -> _Entry:
        entry = self._entries.pop(key)
        self.size -= entry.size
        return entry

    def _shrink(self) -> None:
        while self.size > self.budget and self._entries:
            key, entry = self._entries.popitem(last=False)
            self.size -= entry.size
            entry.owner._forgotten(key, entry, TOTAL_OPTION)


class FlowMessages:
    """The payloads one live flow keeps: at most C{budget} bytes (and C{max_count} messages).

    @ivar size: payload bytes kept now.
    """

    def __init__(
        self,
        store: MessageStore,
        budget: int,
        option: str,
        forget: Forget,
        max_count: int | None,
    ) -> None:
        self.size = 0
        self.budget = budget
        self._store = store
        self._option = option
        self._forget: Forget | None = forget
        self._max_count = max_count
        self._keys: deque[int] = deque()

    def keep(self, message: Any, size: int) -> None:
        """Keep C{message} (C{size} payload bytes), forgetting older ones past the budgets.

        A message larger than a budget by itself is forgotten at once; after L{release},
        nothing is kept any more.
        """
        forget = self._forget
        if forget is None:
            return
        if size > self.budget:
            forget(message, size, self._option)
            return
        if size > self._store.budget:
            forget(message, size, TOTAL_OPTION)
            return
        self._keys.append(self._store._add(_Entry(self, message, size)))
        self.size += size
        while self._keys and (self.size > self.budget or (self._max_count is not None and len(self._keys) > self._max_count)):
            entry = self._store._remove(self._keys.popleft())
            self.size -= entry.size
            forget(entry.message, entry.size, self._option)
        self._store._shrink()

    def release(self) -> None:
        """The flow ended: its messages stay with it but leave the store.

        The flow's forget callback is dropped as well: it belongs to the flow's relay,
        which holds this object, and that cycle would keep the flow until a full
        garbage collection.
        """
        while self._keys:
            self._store._remove(self._keys.popleft())
        self.size = 0
        self._forget = None

    def _forgotten(self, key: int, entry: _Entry, option: str) -> None:
        """The store took this flow's oldest kept message back (the total budget was passed)."""
        oldest = self._keys.popleft()
        assert oldest == key, "the store forgets in the order messages were kept"
        self.size -= entry.size
        assert self._forget is not None, "a released flow has nothing in the store"
        self._forget(entry.message, entry.size, option)
