# -*- test-case-name: tests.test_http1 -*-
"""Exceptions shared across twisted_mitm; script-facing names follow mitmproxy's."""


class TwistedMitmError(Exception):
    """Base class of twisted_mitm's own exceptions."""


class OptionsError(TwistedMitmError):
    """An option name or value is not acceptable; raised by scripts' C{configure} too."""


class ControlException(TwistedMitmError):
    """A flow cannot be controlled as asked (for example, killing a flow that is not live)."""


class FlowReadException(TwistedMitmError):
    """A flow file cannot be read: its text says where and why."""


class CommandError(TwistedMitmError):
    """A command does not exist, or its arguments do not fit it; raised by commands too."""


class AddonError(TwistedMitmError):
    """A script could not be loaded."""


class ProtocolError(TwistedMitmError):
    """A peer broke the HTTP protocol; C{status} is the answer owed to the client.

    400, 413 and 431 describe the client's request; 502 and 504 the server's side.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
