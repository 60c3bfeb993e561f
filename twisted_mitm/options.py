# -*- test-case-name: tests.test_options -*-
"""
The typed option registry: built-in options, C{--set NAME=VALUE} parsing, SIZE and boolean
texts, and names held back until a script declares them.

Pure standard library, and L{twisted_mitm.flowfilter} (pure too) to check filter
expressions. L{twisted_mitm.tap} fills it from the command line, scripts read it
as C{ctx.options} and extend it through C{Loader.add_option}, and the addon manager
subscribes to it so that every change reaches the addons' C{configure} hook.
"""

from __future__ import annotations

import collections.abc
import re
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

from twisted_mitm import flowfilter
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.mode_specs import ProxyMode

Check = Callable[[Any], None]
"""A per-option validator: raises C{ValueError} whose text names the problem."""

_SIZE = re.compile(r"([0-9]+)([kmg]?)", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_BOOLS = {
    "true": True, "yes": True, "1": True, "on": True,
    "false": False, "no": False, "0": False, "off": False,
}


def parse_size(text: str) -> int:
    """Parse a SIZE: an integer with an optional k, m or g suffix (powers of 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size (examples: 512k, 3m, 1g)")
    return int(match[1]) * _SIZE_FACTORS[match[2].lower()]


def parse_bool(text: str) -> bool:
    """Parse true/false, yes/no, 1/0 or on/off, in any case."""
    try:
        return _BOOLS[text.strip().lower()]
    except KeyError:
        raise ValueError(
            f"{text!r} is not a boolean (use true/false, yes/no, 1/0, on/off)"
        ) from None


def check_size(value: str | None) -> None:
    """Validate a SIZE option; C{None} means unset."""
    if value is not None:
        parse_size(value)


def check_credentials(value: str | None) -> None:
    """Validate C{user:pass} credentials; C{None} means unset."""
    if value is not None and ":" not in value:
        raise ValueError(f"{value!r} is not user:pass")


def check_port(value: int) -> None:
    """Validate a TCP port number."""
    if not 0 <= value <= 65535:
        raise ValueError(f"{value} is not a port number (0-65535)")


def check_regexes(patterns: Sequence[str]) -> None:
    """Validate a list of regular expressions."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(
                f"{pattern!r} is not a valid regular expression: {e.msg}"
            ) from None


def check_filter(expression: str | None) -> None:
    """Validate a filter expression (L{twisted_mitm.flowfilter}); C{None} or C{""}: unset."""
    if expression:
        flowfilter.parse(expression)


def check_positive(value: int) -> None:
    """Validate a count that must be at least 1."""
    if value < 1:
        raise ValueError(f"{value} is not a positive number")


def check_seconds(value: int) -> None:
    """Validate a timeout in seconds; 0 disables it."""
    if value < 0:
        raise ValueError(f"{value} is not a number of seconds (0 or more)")


def check_proxyauth(value: str | None) -> None:
    """Validate C{any}, C{user:pass} or C{@htpasswd-path}; C{None} means no authentication."""
    if value is None or value == "any" or value.startswith("@"):
        return
    if value.startswith(("ldap:", "ldaps:")):
        raise ValueError("LDAP authentication is not supported (use user:pass, any or @htpasswd-path)")
    if ":" not in value:
        raise ValueError(f"{value!r} is not of the form user:pass, any or @htpasswd-path")


def check_modes(specs: Sequence[str]) -> None:
    """Validate proxy mode specifications (L{twisted_mitm.mode_specs})."""
    if not specs:
        raise ValueError("at least one mode is needed (e.g. regular)")
    for spec in specs:
        ProxyMode.parse(spec)


@dataclass(frozen=True)
class _Kind:
    """The normalized form of a typespec, able to check values and parse texts."""

    name: str
    base: type
    optional: bool = False
    sequence: bool = False

    def check(self, value: Any) -> Any:
        """Return C{value} in its stored form (sequences as tuples, ints as floats)."""
        if value is None and self.optional:
            return None
        if self.sequence:
            if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
                return tuple(value)
        elif self.base is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif isinstance(value, self.base) and (self.base is bool or not isinstance(value, bool)):
            return value
        raise ValueError(f"expected {self.name}, got {value!r}")

    def parse(self, texts: list[str | None], current: Any) -> Any:
        """Parse the texts given for one option; C{None} stands for a bare C{NAME}."""
        if self.sequence:
            return tuple(text for text in texts if text)
        if len(texts) > 1:
            raise ValueError(f"given more than once ({', '.join(map(repr, texts))})")
        (text,) = texts
        if self.optional and not text:
            return None
        if self.base is bool:
            if text is None:
                return True
            return not current if text == "toggle" else parse_bool(text)
        if text is None:
            raise ValueError("a value is required (NAME=VALUE)")
        return _PARSERS[self.base](text)


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an integer") from None


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


_PARSERS: dict[type, Callable[[str], Any]] = {int: _parse_int, float: _parse_float, str: str}


def _kind_of(typespec: Any) -> _Kind | None:
    """Normalize a typespec (C{int}, C{Optional[str]}, C{str | None}, C{Sequence[str]})."""
    if typespec in (bool, int, str, float):
        return _Kind(typespec.__name__, typespec)
    origin, args = typing.get_origin(typespec), typing.get_args(typespec)
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        base = args[0] if args[1] is type(None) else args[1]
        if base in (int, str, float):
            return _Kind(f"optional {base.__name__}", base, optional=True)
    if origin is collections.abc.Sequence and args == (str,):
        return _Kind("sequence of str", str, sequence=True)
    return None


class _Option:
    """One registered option and its current value."""

    def __init__(
        self,
        name: str,
        kind: _Kind,
        default: Any,
        help: str,
        choices: Sequence[str] | None,
        check: Check | None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.help = textwrap.dedent(help).strip().replace("\n", " ")
        self.choices = tuple(choices) if choices is not None else None
        self.check = check
        self.default = self.validated(default)
        self.value = self.default

    def validated(self, value: Any) -> Any:
        """Return C{value} in stored form or raise an L{OptionsError} naming the option."""
        try:
            value = self.kind.check(value)
            self._check_choices(value)
            if self.check is not None:
                self.check(value)
        except ValueError as e:
            raise OptionsError(f"{self.name}: {e}") from None
        return value

    def parsed(self, texts: list[str | None]) -> Any:
        """Parse C{--set} texts, naming the option in any error."""
        try:
            return self.kind.parse(texts, self.value)
        except ValueError as e:
            raise OptionsError(f"{self.name}: {e}") from None

    def _check_choices(self, value: Any) -> None:
        if self.choices is None or value is None:
            return
        for item in value if self.kind.sequence else (value,):
            if item not in self.choices:
                raise ValueError(
                    f"{item!r} is not supported (supported: {', '.join(self.choices)})"
                )


class Options:
    """
    Typed options, read as attributes (C{options.listen_port}) and changed with
    L{update}, attribute assignment or L{set}.

    Subscribers learn the names of changed options after each change; one raising
    L{OptionsError} undoes the change. Names given to L{set} with C{defer=True} that are not
    registered yet wait in C{_deferred} until L{process_deferred} finds them declared.
    """

    def __init__(self) -> None:
        self._options: dict[str, _Option] = {}
        self._subscribers: list[Callable[[set[str]], None]] = []
        self._deferred: dict[str, list[str | None]] = {}

    def add_option(
        self,
        name: str,
        typespec: Any,
        default: Any,
        help: str,
        choices: Sequence[str] | None = None,
        check: Check | None = None,
    ) -> None:
        """
        Register an option. Declaring an existing name again with the same type (a script
        reloading) keeps its current value; a different type starts from the new default.

        @raise OptionsError: the typespec is unsupported or the default does not fit it.
        """
        kind = _kind_of(typespec)
        if kind is None:
            raise OptionsError(f"{name}: unsupported option type {typespec!r}")
        option = _Option(name, kind, default, help, choices, check)
        previous = self._options.get(name)
        if previous is not None and previous.kind == kind:
            option.value = option.validated(previous.value)
        self._options[name] = option

    def __getattr__(self, name: str) -> Any:
        options = self.__dict__.get("_options", {})
        if name not in options:
            raise AttributeError(f"unknown option: {name}")
        value = options[name].value
        return list(value) if type(value) is tuple else value

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
        else:
            self.update(**{name: value})

    def __contains__(self, name: object) -> bool:
        return name in self._options

    def keys(self) -> set[str]:
        """The names of all registered options."""
        return set(self._options)

    def items(self) -> list[tuple[str, Any]]:
        """C{(name, current value)} pairs sorted by name."""
        return [(name, getattr(self, name)) for name in sorted(self._options)]

    def help(self, name: str) -> str:
        """The one-paragraph help text of an option."""
        return self._option(name).help

    def default(self, name: str) -> Any:
        """The default value of an option."""
        default = self._option(name).default
        return list(default) if type(default) is tuple else default

    def typespec_name(self, name: str) -> str:
        """The type of an option in words: C{int}, C{optional str}, C{sequence of str}..."""
        return self._option(name).kind.name

    def choices(self, name: str) -> tuple[str, ...] | None:
        """The accepted values of an option, if it has a fixed list."""
        return self._option(name).choices

    def subscribe(self, callback: Callable[[set[str]], None]) -> None:
        """Call C{callback(updated_names)} after every change; it may raise L{OptionsError}."""
        self._subscribers.append(callback)

    def update(self, **changes: Any) -> None:
        """
        Validate and apply typed values, then notify subscribers.

        @raise OptionsError: an unknown name, a bad value, or a subscriber refused the change
            (which is then rolled back and announced again so subscribers re-read the old values).
        """
        if not changes:
            return
        new = {name: self._option(name).validated(value) for name, value in changes.items()}
        old = {name: self._options[name].value for name in new}
        self._apply(new)
        updated = set(new)
        try:
            self._notify(updated)
        except OptionsError:
            self._apply(old)
            self._notify_after_rollback(updated)
            raise

    def set(self, *specs: str, defer: bool = False) -> None:
        """
        Apply C{"name=value"} texts, parsed per type. A sequence option given several times
        collects every value; a bare C{"name"} sets a boolean, and an empty value or a bare name
        unsets an optional option or empties a sequence.

        @param defer: keep unknown names until L{process_deferred} instead of failing.
        @raise OptionsError: an unknown name (unless deferred) or a bad value.
        """
        texts: dict[str, list[str | None]] = {}
        for spec in specs:
            name, equals, value = spec.partition("=")
            texts.setdefault(name, []).append(value if equals else None)
        unknown = {name: given for name, given in texts.items() if name not in self._options}
        if unknown and not defer:
            raise OptionsError(_unknown(unknown))
        known = {
            name: self._options[name].parsed(given)
            for name, given in texts.items()
            if name not in unknown
        }
        self._deferred.update(unknown)
        self.update(**known)

    def process_deferred(self) -> None:
        """Apply the deferred C{set} texts whose options have been declared since."""
        ready = [name for name in self._deferred if name in self._options]
        parsed = {name: self._options[name].parsed(self._deferred[name]) for name in ready}
        for name in ready:
            del self._deferred[name]
        self.update(**parsed)

    def deferred_names(self) -> list[str]:
        """The names given to C{set(defer=True)} that no option has claimed yet."""
        return sorted(self._deferred)

    def _option(self, name: str) -> _Option:
        try:
            return self._options[name]
        except KeyError:
            raise OptionsError(f"unknown option: {name}") from None

    def _apply(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            self._options[name].value = value

    def _notify(self, updated: set[str]) -> None:
        for callback in list(self._subscribers):
            callback(set(updated))

    def _notify_after_rollback(self, updated: set[str]) -> None:
        # Subscribers before the one that refused already took the new values; they are
        # told again so they re-read the old ones. Refusing the old values changes nothing.
        for callback in list(self._subscribers):
            try:
                callback(set(updated))
            except OptionsError:
                pass


def _unknown(names: Iterable[str]) -> str:
    names = list(names)
    return f"unknown option{'s' if len(names) > 1 else ''}: {', '.join(names)}"


def _check_host_filters(options: Options) -> Callable[[set[str]], None]:
    """Make the subscriber refusing C{ignore_hosts} and C{allow_hosts} together."""

    def check(updated: set[str]) -> None:
        both_set = options.ignore_hosts and options.allow_hosts
        if {"ignore_hosts", "allow_hosts"} & updated and both_set:
            raise OptionsError(
                "ignore_hosts and allow_hosts are mutually exclusive; use one of them"
            )

    return check


def default_options() -> Options:
    """The registry with twisted_mitm's built-in options (mitmproxy's names and meanings)."""
    options = Options()
    add = options.add_option
    add("listen_host", str, "127.0.0.1", "Address to listen on for proxy clients.")
    add("listen_port", int, 8080, "Port to listen on for proxy clients.", check=check_port)
    add(
        "mode", Sequence[str], ["regular"],
        "The proxy modes, each listening on its own address: regular, reverse:URL, "
        "upstream:URL, socks5, transparent, each optionally followed by @[host:]port "
        "(e.g. 'reverse:https://example.com@8081'); without it a mode listens on "
        "listen_host:listen_port.",
        check=check_modes,
    )
    add(
        "keep_host_header", bool, False,
        "Reverse mode: keep the Host header the client sent instead of setting it to "
        "the reverse target's.",
    )
    add(
        "upstream_auth", Optional[str], None,
        "Upstream mode: credentials 'user:pass' sent to the upstream proxy as Basic "
        "Proxy-Authorization.",
        check=check_credentials,
    )
    add("scripts", Sequence[str], [], "Addon scripts to load, in order.")
    add(
        "ssl_insecure", bool, False,
        "Do not verify upstream server TLS certificates.",
    )
    add(
        "ignore_hosts", Sequence[str], [],
        "Regular expressions matched against 'host:port' of a CONNECT; matching "
        "connections are relayed as raw TCP without interception. Cannot be combined "
        "with allow_hosts.",
        check=check_regexes,
    )
    add(
        "allow_hosts", Sequence[str], [],
        "Regular expressions matched against 'host:port' of a CONNECT; only matching "
        "connections are intercepted, all others are relayed as raw TCP. Cannot be "
        "combined with ignore_hosts.",
        check=check_regexes,
    )
    add(
        "flow_detail", int, 1,
        "Detail of the flow log, as mitmdump's: 0 logs no flow lines (errors are still "
        "logged); 1 one line per flow (and per WebSocket or TCP message); 2 adds the "
        "request and response headers; 3 adds bodies and messages, cut after "
        "content_view_lines_cutoff lines, binary ones summarised; 4 shows them whole.",
    )
    add(
        "dumper_filter", Optional[str], None,
        "Filter expression: only flows that match it are logged (see docs/flows.md). "
        "The proxy's positional argument, as in 'twistd mitm \"~d example.com\"', sets it.",
        check=check_filter,
    )
    add(
        "content_view_lines_cutoff", int, 512,
        "At flow_detail 3, bodies and messages are cut after this many lines.",
        check=check_positive,
    )
    add(
        "view_filter", Optional[str], None,
        "Filter expression limiting the flows that mitmproxy's console and web views show. "
        "twisted_mitm has no such views: the expression is checked, then unused.",
        check=check_filter,
    )
    add(
        "confdir", str, "~/.mitmproxy",
        "Directory holding the CA files (mitmproxy-ca.pem and friends); created with a "
        "new CA when missing.",
    )
    add(
        "stream_large_bodies", Optional[str], None,
        "SIZE (e.g. 512k, 3m, 1g). Message bodies larger than this are streamed through "
        "instead of buffered: request/response hooks then see an empty body, and "
        "modifications to it are ignored. Unset: buffer every body.",
        check=check_size,
    )
    add(
        "store_streamed_bodies", bool, False,
        "Keep streamed bodies: each one is written to a temporary file as it passes (after "
        "any transform), with memory bounded whatever its size, and hooks after the body, "
        "flow files and HAR read it from there. The file is deleted with its flow, or when "
        "the proxy stops.",
    )
    add(
        "stream_websockets", bool, False,
        "Forward WebSocket frames as soon as they arrive. Payloads are still recorded and "
        "websocket_message still runs, but cannot change or drop messages.",
    )
    add(
        "body_size_limit", Optional[str], None,
        "SIZE (e.g. 512k, 3m, 1g). Refuse message bodies larger than this (413 for "
        "requests, 502 for responses). Unset: no limit.",
        check=check_size,
    )
    add(
        "ssl_verify_upstream_trusted_ca", Optional[str], None,
        "Path to a PEM bundle of CA certificates trusted for upstream servers, instead "
        "of the system trust store.",
    )
    add(
        "show_ignored_hosts", bool, False,
        "Report connections to ignored hosts as TCP flows with the tcp_* hooks "
        "(still relayed without interception).",
    )
    add("hardump", str, "", "Write the session as HAR 1.2 to this path. Empty: disabled.")
    add(
        "save_stream_file", Optional[str], None,
        "Write each flow to this file, in mitmproxy's flow format, when it ends. A leading "
        "'+' appends instead of overwriting. The path may use strftime() codes (a new file "
        "starts whenever the formatted name changes); missing folders are created, new "
        "files are readable by their owner only. Unset: no flow file.",
    )
    add(
        "save_stream_filter", Optional[str], None,
        "Filter expression choosing which flows save_stream_file writes. Unset: all.",
        check=check_filter,
    )
    add(
        "rfile", Optional[str], None,
        "Read flows from this mitmproxy flow file at start-up and run each through the "
        "addons' hooks, as if it had just passed through the proxy. The whole file is "
        "checked first: a missing or invalid file stops start-up with one line.",
    )
    add(
        "keepserving", bool, False,
        "Keep running after the flows of rfile have been read; by default the proxy stops then.",
    )
    add(
        "proxyauth", Optional[str], None,
        "Require clients to authenticate to the proxy with Basic credentials: 'user:pass' "
        "for one user, 'any' to accept any user and password, or '@path' for the users of an "
        "Apache htpasswd file (bcrypt or {SHA} entries). Unset: no authentication.",
        check=check_proxyauth,
    )
    add(
        "block_global", bool, True,
        "Refuse clients connecting from globally routable (public) IP addresses, unless "
        "proxyauth is set. Loopback clients are always served.",
    )
    add(
        "block_private", bool, False,
        "Refuse clients connecting from private networks (10/8, 192.168/16, fc00::/7...). "
        "Loopback clients are always served.",
    )
    add(
        "websocket_max_message_size", str, "64m",
        "SIZE (e.g. 512k, 3m, 1g). Largest WebSocket message accepted when messages are "
        "buffered; a larger message closes the connection with code 1009 (message too big).",
        check=check_size,
    )
    add(
        "websocket_max_stored_bytes", str, "64m",
        "SIZE (e.g. 512k, 3m, 1g). Payload bytes kept in flow.websocket.messages per flow; "
        "beyond it the oldest stored payloads are replaced by a marker (the messages stay in the "
        "list). Relaying is not affected.",
        check=check_size,
    )
    add(
        "tcp_max_stored_bytes", str, "16m",
        "SIZE (e.g. 512k, 3m, 1g). Payload bytes kept in flow.messages per TCP flow (at most "
        "1000 messages); beyond it the oldest messages are removed from the list. Relaying is "
        "not affected.",
        check=check_size,
    )
    add(
        "total_max_stored_bytes", str, "256m",
        "SIZE (e.g. 512k, 3m, 1g). Payload bytes of WebSocket and TCP messages kept by all live "
        "flows together; beyond it the oldest are forgotten first, as per flow. Relaying is not "
        "affected.",
        check=check_size,
    )
    add(
        "upstream_connect_timeout", int, 30,
        "Seconds allowed for connecting to the server (TCP and TLS); the client gets a 504 "
        "when it is exceeded. 0: no limit.",
        check=check_seconds,
    )
    add(
        "upstream_read_timeout", int, 120,
        "Seconds the server may stay silent while a response is awaited or read; the client "
        "gets a 504 if no response had started, otherwise the connection is closed. 0: no limit.",
        check=check_seconds,
    )
    add(
        "connection_idle_timeout", int, 60,
        "Seconds an idle client connection (between requests, or while its request head "
        "arrives) is kept open. A client sending headers slowly is disconnected when its "
        "head is not complete in this time, and one that stops sending its request body "
        "for this long gets a 408. 0: no limit.",
        check=check_seconds,
    )
    add(
        "connection_strategy", str, "eager",
        "When to connect to the server of a CONNECT: 'eager' connects first and answers "
        "502 with the reason when the target is unreachable (the connection is then used "
        "for the tunnel); 'lazy' answers 200 at once and connects when the tunnel's "
        "content needs it.",
        choices=("eager", "lazy"),
    )
    add(
        "request_head_timeout", int, 10,
        "Seconds a client has to send a whole request head once it has begun one (HAProxy's "
        "'timeout http-request'); trickling bytes does not extend it. A client that misses it "
        "gets a 408 and is disconnected. 0: no limit.",
        check=check_seconds,
    )
    add(
        "http2", bool, True,
        "Enable/disable HTTP/2. When enabled, a client that offers h2 inside an intercepted "
        "TLS tunnel gets it if the server agrees to it too (the proxy connects to the server "
        "first and mirrors what it chose); when disabled, both sides speak HTTP/1.1.",
    )
    add(
        "intercept", Optional[str], None,
        "Filter expression: flows that match it are intercepted, held until resumed (the "
        "flow.resume command, or a script's flow.resume()). Setting it turns "
        "intercept_active on.",
        check=check_filter,
    )
    add("intercept_active", bool, False, "Whether the intercept filter is applied.")
    _add_rewriting_options(options)
    _add_replay_options(options)
    options.subscribe(_check_host_filters(options))
    return options


#: What C{server_replay_extra} may say: forward, kill, or answer with one of these statuses.
SERVER_REPLAY_EXTRA = ("forward", "kill", "204", "400", "404", "500")


def _add_replay_options(options: Options) -> None:
    """The options of server replay (docs/flows.md), mitmproxy's names and meanings."""
    add = options.add_option
    add("server_replay", Sequence[str], [], "Answer matching requests with the responses of these flow files.")
    add(
        "client_replay", Sequence[str], [],
        "Replay the requests of these flow files through the proxy (hooks and all) once it "
        "runs, then stop unless keepserving is set.",
    )
    add(
        "client_replay_concurrency", int, 1,
        "How many client replays run at once; -1: all at once.",
    )
    add(
        "server_replay_extra", str, "forward",
        "What to do with requests that have no recorded response: forward them to the server, "
        "kill them, or answer with an empty response of status 204, 400, 404 or 500.",
        choices=SERVER_REPLAY_EXTRA,
    )
    add(
        "server_replay_reuse", bool, False,
        "Keep recorded responses after use, so that one can answer several requests. By "
        "default each answers one request, in recorded order.",
    )
    add(
        "server_replay_refresh", bool, True,
        "Move the Date, Expires and Last-Modified headers and cookie expiry of replayed "
        "responses forward, as if they had just been received.",
    )
    add(
        "server_replay_use_headers", Sequence[str], [],
        "Request headers that must also match for a recorded response to be used.",
    )
    add(
        "server_replay_ignore_content", bool, False,
        "Match requests without looking at their body.",
    )
    add(
        "server_replay_ignore_params", Sequence[str], [],
        "Query parameters left out when matching requests.",
    )
    add(
        "server_replay_ignore_payload_params", Sequence[str], [],
        "Form fields (application/x-www-form-urlencoded or multipart/form-data) left out when "
        "matching request bodies.",
    )
    add("server_replay_ignore_host", bool, False, "Match requests whatever their host.")
    add("server_replay_ignore_port", bool, False, "Match requests whatever their port.")
    add("server_replay_kill_extra", bool, False, "Deprecated: use server_replay_extra=kill.")
    add("server_replay_nopop", bool, False, "Deprecated: use server_replay_reuse.")


def _add_rewriting_options(options: Options) -> None:
    """The options of the built-in addons that rewrite traffic (docs/rewriting.md).

    Rules (C{[SEP filter]SEP subject SEP replacement}, any separator) are checked by their
    addons' C{configure}, which refuses a bad one with a line naming it.
    """
    add = options.add_option
    add(
        "modify_headers", Sequence[str], [],
        "Header rules '[/flow-filter]/header-name/[@]header-value', the separator being any "
        "character: matching requests and responses get the header set to the value (@path: "
        "read from that file); an empty value removes the header.",
    )
    add(
        "modify_body", Sequence[str], [],
        "Body rules '[/flow-filter]/regex/[@]replacement', the separator being any character: "
        "matches of the regex in matching bodies are replaced (@path: by that file's bytes). "
        "Streamed bodies are rewritten on the fly (see docs/rewriting.md).",
    )
    add(
        "map_remote", Sequence[str], [],
        "URL rules '[/flow-filter]/url-regex/replacement', the separator being any character: "
        "matching requests are sent to the URL the replacement makes.",
    )
    add(
        "map_local", Sequence[str], [],
        "Local file rules '[/flow-filter]/url-regex/file-or-directory', the separator being any "
        "character: matching requests are answered from the file, or from the directory with "
        "the rest of the URL as file name (404 if it does not exist).",
    )
    add(
        "anticache", bool, False,
        "Remove request headers that let the server answer 304 Not Modified "
        "(If-Modified-Since, If-None-Match).",
    )
    add("anticomp", bool, False, "Ask servers for uncompressed responses (Accept-Encoding: identity).")
    add(
        "block_list", Sequence[str], [],
        "Blocking rules '/flow-filter/status', the separator being any character: matching "
        "requests get an empty response with that status; 444 closes the connection without "
        "a response.",
    )
    add(
        "stickycookie", Optional[str], None,
        "Filter expression: requests that match it get the cookies the proxy has seen set "
        "for their host, port and path.",
        check=check_filter,
    )
    add(
        "stickyauth", Optional[str], None,
        "Filter expression: requests that match it and carry no Authorization header get "
        "the last one sent to their host.",
        check=check_filter,
    )
