# -*- test-case-name: tests.test_spec -*-
"""mitmproxy's rule syntax for the rewriting options: C{[SEP filter]SEP subject SEP replacement}.

The first character of a rule is its separator, whatever it is (C{/}, C{|}, C{:}...), so
a rule can use any character its parts do not contain. With two parts the rule applies
to every flow; with three the first is a filter expression (L{twisted_mitm.flowfilter}).
The last part takes the rest of the text, separators included: in
C{/~q/Header/a/b} the replacement is C{a/b}.

Used by C{modify_headers}, C{modify_body}, C{map_remote} and C{map_local}; C{block_list}
has two parts (C{SEP filter SEP status}) and splits them itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted_mitm import flowfilter
from twisted_mitm.exceptions import OptionsError

Rule = TypeVar("Rule")

FlowFilter = Callable[[Any], bool]
"""A parsed filter, or L{match_all}: called with a flow, tells whether the rule applies."""


def match_all(flow: Any) -> bool:
    """The filter of a rule written without one: every flow matches."""
    return True


def split_rule(option: str, parts: int) -> list[str]:
    """Split C{option} at its own first character into at most C{parts} pieces.

    @raise ValueError: the rule is empty.
    """
    if not option:
        raise ValueError("the rule is empty")
    separator, rest = option[0], option[1:]
    return rest.split(separator, parts - 1)


def parse_spec(option: str) -> tuple[FlowFilter, str, str]:
    """C{(filter, subject, replacement)} of a C{[SEP filter]SEP subject SEP replacement} rule.

    @raise ValueError: one line saying what is wrong (an empty rule, a wrong number of
        parts, a filter that does not parse).
    """
    pieces = split_rule(option, 3)
    if len(pieces) == 2:
        subject, replacement = pieces
        return match_all, subject, replacement
    if len(pieces) == 3:
        expression, subject, replacement = pieces
        return flowfilter.parse(expression), subject, replacement
    raise ValueError(
        f"expected {option[0]}subject{option[0]}replacement or "
        f"{option[0]}filter{option[0]}subject{option[0]}replacement "
        f"(the first character, {option[0]!r}, separates the parts)"
    )


def parse_rules(name: str, rules: Sequence[str], parse: Callable[[str], Rule]) -> list[Rule]:
    """Parse every rule given to option C{name} with C{parse}.

    @raise OptionsError: one line naming the option and the first rule that does not parse.
    """
    parsed = []
    for rule in rules:
        try:
            parsed.append(parse(rule))
        except ValueError as e:
            raise OptionsError(f"{name}: cannot parse {rule!r}: {e}") from None
    return parsed
