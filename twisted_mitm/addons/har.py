# -*- test-case-name: tests.test_builtin_addons -*-
"""C{hardump=PATH}: write the session as HAR 1.2 when the proxy stops (SPEC §6).

Each finished flow is turned into its HAR entry at once, so the flow itself is not kept.
Buffered bodies are included with their Content-Encoding undone (text as is, binary as
base64); a body whose encoding is unknown or corrupt is included as sent, with a comment
saying why. Streamed bodies were never held, so their entries carry the byte count only.
A recording holds cookies, tokens and bodies: the file is readable and writable by its
owner only (mode 0600).
"""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timezone
from typing import Any, TextIO

from twisted.logger import Logger

from twisted_mitm import __version__, ctx
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.http import Headers, HTTPFlow, Message
from twisted_mitm.spool import SpooledBody

log = Logger()


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()


def _name_values(headers: Headers) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in headers.items(multi=True)]


def _milliseconds(start: float | None, end: float | None) -> float:
    if start is None or end is None:
        return -1
    return round(max(end - start, 0) * 1000, 3)


def _body_size(flow: HTTPFlow, message: Message, which: str) -> int:
    streamed = flow.metadata.get(f"{which}_body_size")
    return int(streamed) if streamed is not None else len(message.raw_content or b"")


def _content(flow: HTTPFlow, message: Message, which: str) -> dict[str, Any]:
    content: dict[str, Any] = {
        "size": _body_size(flow, message, which),
        "mimeType": message.headers.get("content-type", ""),
    }
    if message.stream and not isinstance(message.data.content, SpooledBody):
        content["comment"] = "streamed: body not recorded"
        return content
    try:
        body = message.content or b""
    except ValueError as error:
        body = message.raw_content or b""
        content["comment"] = f"body as sent, not decoded: {error}"
    try:
        content["text"] = body.decode("utf-8")
    except UnicodeDecodeError:
        content["text"] = base64.b64encode(body).decode("ascii")
        content["encoding"] = "base64"
    return content


def open_private(path: str) -> TextIO:
    """Open C{path} for writing text, created or truncated, with mode 0600 even if it existed."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
    except OSError:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "w", encoding="utf-8")


def har_entry(flow: HTTPFlow) -> dict[str, Any]:
    """The HAR 1.2 entry of one HTTP flow."""
    request, response = flow.request, flow.response
    entry_request: dict[str, Any] = {
        "method": request.method,
        "url": request.pretty_url,
        "httpVersion": request.http_version,
        "cookies": [{"name": name, "value": value} for name, value in request.cookies.items(multi=True)],
        "headers": _name_values(request.headers),
        "queryString": [{"name": name, "value": value} for name, value in request.query.items(multi=True)],
        "headersSize": -1,
        "bodySize": _body_size(flow, request, "request"),
    }
    if request.raw_content or request.stream:
        post = _content(flow, request, "request")
        entry_request["postData"] = {"mimeType": post["mimeType"], "text": post.get("text", ""), "params": []}
    entry_response: dict[str, Any] = {
        "status": response.status_code if response else 0,
        "statusText": response.reason if response else "",
        "httpVersion": response.http_version if response else "",
        "cookies": [],
        "headers": _name_values(response.headers) if response else [],
        "content": _content(flow, response, "response") if response else {"size": 0, "mimeType": ""},
        "redirectURL": response.headers.get("location", "") if response else "",
        "headersSize": -1,
        "bodySize": _body_size(flow, response, "response") if response else -1,
    }
    end = response.timestamp_end if response and response.timestamp_end else request.timestamp_end
    entry: dict[str, Any] = {
        "startedDateTime": _iso(request.timestamp_start),
        "time": _milliseconds(request.timestamp_start, end),
        "request": entry_request,
        "response": entry_response,
        "cache": {},
        "timings": {
            "send": _milliseconds(request.timestamp_start, request.timestamp_end),
            "wait": _milliseconds(request.timestamp_end, response.timestamp_start if response else None),
            "receive": _milliseconds(response.timestamp_start, response.timestamp_end) if response else -1,
        },
    }
    if flow.server_conn.peername:
        entry["serverIPAddress"] = str(flow.server_conn.peername[0])
    if flow.error is not None:
        entry["comment"] = f"error: {flow.error.msg}"
    return entry


def har_document(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A whole HAR 1.2 document around C{entries}."""
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "twisted_mitm", "version": __version__},
            "pages": [],
            "entries": entries,
        }
    }


class HarDump:
    """Collects HAR entries while C{hardump} is set and writes them at C{done}."""

    def __init__(self) -> None:
        self.path = ""
        self.entries: list[dict[str, Any]] = []

    def configure(self, updated: set[str]) -> None:
        if "hardump" in updated:
            path = os.path.expanduser(ctx.options.hardump)
            folder = os.path.dirname(os.path.abspath(path))
            if path and not os.path.isdir(folder):
                raise OptionsError(f"hardump: folder {folder} does not exist")
            self.path = path

    def response(self, flow: HTTPFlow) -> None:
        if self.path:
            self.entries.append(har_entry(flow))

    def error(self, flow: HTTPFlow) -> None:
        if self.path:
            self.entries.append(har_entry(flow))

    def done(self) -> None:
        if not self.path:
            return
        try:
            with open_private(self.path) as file:
                json.dump(har_document(self.entries), file, indent=1)
        except OSError as error:
            log.error("hardump: cannot write {path}: {error}", path=self.path, error=error.strerror)
            return
        log.info("hardump: wrote {count} entries to {path}", count=len(self.entries), path=self.path)
