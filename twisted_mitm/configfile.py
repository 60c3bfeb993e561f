# -*- test-case-name: tests.test_configfile -*-
"""C{config.yaml} in the confdir: options set in a file, as mitmproxy reads it.

Each key is an option name; values are typed as on the command line. The file is read
before the command line is applied, so C{--set} and the flags override it, and names that
no option has yet wait for the scripts that declare them, as C{--set} names do.

mitmproxy's configuration files are flat, so this reads the part of YAML they use, strictly:

    # a comment
    listen_port: 8081
    ssl_insecure: true
    stream_large_bodies: 3m
    proxyauth: "@~/.mitmproxy/htpasswd"     # '@' must be quoted, as in any YAML
    ignore_hosts:
      - '^example\\.com:443$'
      - internal.example
    scripts: [one.py, two.py]               # relative to the file's directory
    body_size_limit: null

Plain, C{'single'} and C{"double"} quoted scalars, C{null}/C{~}, block and flow lists of
scalars. Anything else (nested mappings, multi-line strings, anchors, tags) is refused
with the file, the line and what to write instead: a proxy must not guess what a
configuration meant.
"""

from __future__ import annotations

import json
import os
import re

from twisted_mitm.exceptions import OptionsError
from twisted_mitm.options import Options

FILE_NAMES = ("config.yaml", "config.yml")

Value = str | list[str] | None

_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*:(?:\s+(.*))?$")
_ITEM = re.compile(r"-(?:\s+(.*))?$")
_NULLS = ("", "~", "null", "Null", "NULL")
_RESERVED = "&*!|>%@`{"


class ConfigError(OptionsError):
    """The configuration file cannot be read; the message names the file and line."""


def parse(text: str, filename: str = "config.yaml") -> dict[str, Value]:
    """The options a configuration file sets: a scalar text, a list of texts, or C{None}.

    @raise ConfigError: the text is not the flat YAML configuration files use.
    """
    values: dict[str, Value] = {}
    listing: str | None = None  # the key whose "- item" lines may follow
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{filename}:{number}"
        line = _without_comment(raw, where).rstrip()
        if not line.strip() or line.strip() == "---":
            continue
        if line[0].isspace() or line.startswith("-"):
            item = _ITEM.match(line.strip())
            if listing is None or item is None:
                raise ConfigError(f"{where}: expected 'name: value'; nested mappings and multi-line values are not supported")
            items = values[listing]
            if not isinstance(items, list):
                items = values[listing] = []
            items.append(_scalar(item.group(1) or "", where) or "")
            continue
        key = _KEY.match(line)
        if key is None:
            raise ConfigError(f"{where}: expected 'name: value', not {raw.strip()!r}")
        name, given = key.group(1), (key.group(2) or "").strip()
        if name in values:
            raise ConfigError(f"{where}: {name} is set twice")
        values[name] = _value(given, where) if given else None
        listing = None if given else name
    return values


def _value(given: str, where: str) -> Value:
    if given.startswith("["):
        if not given.endswith("]"):
            raise ConfigError(f"{where}: a [list] must end on its line")
        inside = given[1:-1].strip()
        return [_scalar(item.strip(), where) or "" for item in _split_flow(inside, where)] if inside else []
    return _scalar(given, where)


def _split_flow(inside: str, where: str) -> list[str]:
    """Split C{a, 'b, c', "d"} at the commas outside quotes."""
    items, start, quote = [], 0, ""
    for index, char in enumerate(inside):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            items.append(inside[start:index])
            start = index + 1
        elif char in "[]{}":
            raise ConfigError(f"{where}: nested lists and mappings are not supported")
    items.append(inside[start:])
    return items


def _scalar(text: str, where: str) -> str | None:
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'"):
            raise ConfigError(f"{where}: unterminated 'quoted' value")
        return text[1:-1].replace("''", "'")
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError:
            raise ConfigError(f"{where}: cannot read the \"quoted\" value {text}") from None
        if not isinstance(value, str):
            raise ConfigError(f"{where}: cannot read the \"quoted\" value {text}")
        return value
    if text in _NULLS:
        return None
    if text[0] in _RESERVED:
        raise ConfigError(f"{where}: a value starting with {text[0]!r} must be quoted (YAML reserves it)")
    return text


def _without_comment(line: str, where: str) -> str:
    """The line without a C{#} comment (one at the start, or after a space, outside quotes)."""
    quote, index = "", 0
    while index < len(line):
        char = line[index]
        if quote == "'" and line.startswith("''", index):
            index += 1  # a quote doubled inside single quotes
        elif quote == '"' and char == "\\":
            index += 1  # an escaped character inside double quotes
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"" and (index == 0 or line[index - 1] in " :[,-\t"):
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index]
        elif char == "\t" and not line[:index].strip():
            raise ConfigError(f"{where}: tabs cannot indent YAML")
        index += 1
    return line


def specs(values: dict[str, Value], directory: str) -> list[str]:
    """The C{name=value} texts that set the options as the file says.

    Script paths are taken relative to C{directory}, the file's own, as mitmproxy does.
    """
    texts = []
    for name, value in values.items():
        if isinstance(value, list):
            if name == "scripts":
                value = [os.path.join(directory, os.path.expanduser(path)) for path in value]
            texts += [f"{name}={item}" for item in value] or [f"{name}="]
        else:
            texts.append(f"{name}={'' if value is None else value}")
    return texts


def load(options: Options, confdir: str) -> str | None:
    """Apply C{config.yaml} (or C{config.yml}) from C{confdir}, if there is one.

    Unknown names wait for the scripts' options, as deferred C{--set}s do.

    @return: the file read, if any.
    @raise OptionsError: the file cannot be read, or sets a bad value; the message names it.
    """
    for name in FILE_NAMES:
        path = os.path.join(os.path.expanduser(confdir), name)
        if os.path.isfile(path):
            break
    else:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        raise OptionsError(f"{path}: cannot read it: {error}") from None
    try:
        options.set(*specs(parse(text, path), os.path.dirname(path)), defer=True)
    except ConfigError:
        raise
    except OptionsError as error:
        raise OptionsError(f"{path}: {error}") from None
    return path
