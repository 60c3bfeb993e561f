# -*- test-case-name: tests.test_messagestore -*-
"""L{MessageStore} and L{FlowMessages}: payloads kept within per-flow and total budgets."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_mitm.proxy.messagestore import TOTAL_OPTION, FlowMessages, MessageStore


class Forgetting:
    """A flow's forget callback that records C{(flow name, message, size, option)}."""

    def __init__(self, events: list[tuple[str, str, int, str]], name: str) -> None:
        self.events = events
        self.name = name

    def __call__(self, message: str, size: int, option: str) -> None:
        self.events.append((self.name, message, size, option))


class MessageStoreTests(SynchronousTestCase):
    """The oldest payloads are forgotten first, per flow and across flows."""

    def setUp(self) -> None:
        self.events: list[tuple[str, str, int, str]] = []
        self.store = MessageStore(100)

    def flow(self, name: str, budget: int = 60, max_count: int | None = None) -> FlowMessages:
        return self.store.for_flow(budget, f"{name}_option", Forgetting(self.events, name), max_count)

    def test_within_budgets(self) -> None:
        """Messages within both budgets are all kept and counted."""
        a, b = self.flow("a"), self.flow("b")
        a.keep("a1", 30)
        b.keep("b1", 30)
        a.keep("a2", 30)
        self.assertEqual((a.size, b.size, self.store.size), (60, 30, 90))
        self.assertEqual(self.events, [])

    def test_flow_budget(self) -> None:
        """Past its own budget a flow forgets its oldest messages, naming its own option."""
        a = self.flow("a")
        for index in range(3):
            a.keep(f"a{index}", 25)
        self.assertEqual(self.events, [("a", "a0", 25, "a_option")])
        self.assertEqual((a.size, self.store.size), (50, 50))

    def test_total_budget_across_flows(self) -> None:
        """Past the total, the oldest message of any live flow is forgotten, naming the total option."""
        a, b = self.flow("a"), self.flow("b")
        a.keep("a1", 40)
        b.keep("b1", 40)
        b.keep("b2", 15)
        a.keep("a2", 20)
        self.assertEqual(self.events, [("a", "a1", 40, TOTAL_OPTION)])
        self.assertEqual((a.size, b.size, self.store.size), (20, 55, 75))
        b.keep("b3", 10)
        c = self.flow("c")
        c.keep("c1", 60)
        self.assertEqual(self.events[1:], [("b", "b1", 40, "b_option"), ("b", "b2", 15, TOTAL_OPTION)])
        self.assertEqual((a.size, b.size, c.size, self.store.size), (20, 10, 60, 90))

    def test_too_large_alone(self) -> None:
        """A message larger than the flow's budget, or than the total, is never kept."""
        a = self.flow("a", budget=200)
        a.keep("huge", 150)
        small = self.flow("small", budget=10)
        small.keep("big", 11)
        self.assertEqual(self.events, [("a", "huge", 150, TOTAL_OPTION), ("small", "big", 11, "small_option")])
        self.assertEqual(self.store.size, 0)

    def test_max_count(self) -> None:
        """A flow with a message count limit forgets its oldest past it."""
        a = self.flow("a", max_count=2)
        for index in range(3):
            a.keep(f"a{index}", 1)
        self.assertEqual(self.events, [("a", "a0", 1, "a_option")])

    def test_release(self) -> None:
        """An ended flow leaves the store: others have its share, and it keeps nothing more."""
        a, b = self.flow("a"), self.flow("b")
        a.keep("a1", 50)
        b.keep("b1", 50)
        a.release()
        self.assertEqual((a.size, self.store.size), (0, 50))
        b.keep("b2", 10)
        a.keep("a2", 10)
        self.assertEqual(self.events, [])
        self.assertEqual((a.size, self.store.size), (0, 60))

    def test_smaller_total(self) -> None:
        """Lowering the total budget forgets the oldest messages at once."""
        a = self.flow("a")
        a.keep("a1", 30)
        a.keep("a2", 30)
        self.store.set_budget(40)
        self.assertEqual(self.events, [("a", "a1", 30, TOTAL_OPTION)])
        self.assertEqual(self.store.size, 30)
