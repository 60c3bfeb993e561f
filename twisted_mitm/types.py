# -*- test-case-name: tests.test_command -*-
"""Argument types of commands that are not plain Python types, under mitmproxy's names.

A command declares them as annotations (C{def histogram(self, path: types.Path)}), and
L{twisted_mitm.command} converts a command line's words to them.
"""

from __future__ import annotations


class Path(str):
    """A file system path; C{~} is expanded when it comes from a command line."""


class Marker(str):
    """A flow mark: C{""} (unmarked) or a name such as C{":default:"}."""
