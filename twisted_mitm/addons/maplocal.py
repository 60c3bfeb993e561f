# -*- test-case-name: tests.test_maplocal -*-
"""C{map_local}: answer requests from local files, rules C{[SEP filter]SEP url-regex SEP path}.

In the C{request} hook, as in mitmproxy. A rule whose path is a file answers every
matching URL with that file. A rule whose path is a directory looks for the file the
rest of the URL names: the first regex group if the regex has one, else what follows the
match (without the query, slashes stripped), URL-decoded; then that name plus
C{/index.html}; then the same two with characters other than C{0-9a-zA-Z-_.=(),/}
turned into C{_}. Nothing after the match means the directory's C{index.html}. A
name that climbs out of the directory (C{..}, an absolute path) is never served.

The first existing candidate of the first matching rule answers with 200 and the
file, typed by its extension (C{mimetypes}); when rules matched but no candidate exists,
the answer is 404. A file larger than C{stream_large_bodies} (1 MiB when that is unset)
is not read into memory: the response's C{body_file} names it and the proxy streams it
from disk as the client takes it.
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
import urllib.parse
from pathlib import Path
from typing import NamedTuple

from twisted.logger import Logger

from twisted_mitm import ctx
from twisted_mitm.http import HTTPFlow, Response
from twisted_mitm.options import parse_size
from twisted_mitm.utils.spec import FlowFilter, parse_rules, parse_spec
from twisted_mitm.version import TWISTED_MITM

_log = Logger()

#: Files up to this size are read into memory when C{stream_large_bodies} is unset.
BUFFER_LIMIT = 1024 * 1024

_UNSAFE_NAME_CHARACTERS = re.compile(r"[^0-9a-zA-Z\-_.=(),/]")


class MapLocalSpec(NamedTuple):
    """One rule: which flows, the URL regex, the file or directory that answers."""

    matches: FlowFilter
    regex: str
    local_path: Path


def parse_map_local_spec(option: str) -> MapLocalSpec:
    """Parse a C{map_local} rule; its path must exist.

    @raise ValueError: one line: bad syntax or filter, an invalid regex, a missing path.
    """
    matches, regex, replacement = parse_spec(option)
    try:
        re.compile(regex)
    except re.error as e:
        raise ValueError(f"invalid regular expression {regex!r}: {e}") from None
    try:
        path = Path(replacement).expanduser().resolve(strict=True)
    except OSError as e:
        raise ValueError(f"no such file or directory: {replacement} ({e.strerror or e})") from None
    return MapLocalSpec(matches, regex, path)


def safe_join(root: Path, untrusted: str) -> Path:
    """C{root} joined with a relative name taken from a URL.

    @raise ValueError: the name is absolute or has a C{..} component, so it could lead
        out of C{root}.
    """
    parts = Path(untrusted).parts
    if posixpath.isabs(untrusted) or any(part == ".." for part in parts):
        raise ValueError(f"refusing to leave {root}: {untrusted!r}")
    return root.joinpath(*parts)


def file_candidates(url: str, spec: MapLocalSpec) -> list[Path]:
    """The files that may answer C{url} under a directory rule, best first (the rule's
    regex is known to match C{url})."""
    match = re.search(spec.regex, url)
    assert match is not None
    if match.groups():
        suffix = match.group(1) or ""
    else:
        suffix = url[match.end() :].split("?")[0].strip("/")
    if not suffix:
        return [spec.local_path / "index.html"]
    decoded = urllib.parse.unquote(suffix)
    names = [decoded, f"{decoded}/index.html"]
    escaped = _UNSAFE_NAME_CHARACTERS.sub("_", decoded)
    if escaped != decoded:
        names += [escaped, f"{escaped}/index.html"]
    try:
        return [safe_join(spec.local_path, name) for name in names]
    except ValueError:
        return []


def _buffer_limit() -> int:
    threshold = ctx.options.stream_large_bodies
    return parse_size(threshold) if threshold else BUFFER_LIMIT


def file_response(path: Path, buffer_limit: int) -> Response:
    """A 200 response with the file at C{path}: in memory up to C{buffer_limit} bytes,
    else named by C{body_file} and streamed from disk.

    @raise OSError: the file cannot be read.
    """
    headers = {"Server": TWISTED_MITM}
    mimetype = mimetypes.guess_type(path.name)[0]
    if mimetype:
        headers["Content-Type"] = mimetype
    size = path.stat().st_size
    if size <= buffer_limit:
        return Response.make(200, path.read_bytes(), headers)
    response = Response.make(200, b"", headers)
    response.headers["Content-Length"] = str(size)
    response.body_file = str(path)
    return response


class MapLocal:
    """Answers matching requests with local files (or 404)."""

    def __init__(self) -> None:
        self.replacements: list[MapLocalSpec] = []

    def configure(self, updated: set[str]) -> None:
        if "map_local" in updated:
            self.replacements = parse_rules("map_local", ctx.options.map_local, parse_map_local_spec)

    def request(self, flow: HTTPFlow) -> None:
        if not self.replacements or flow.response is not None or flow.error is not None or not flow.live:
            return
        url = flow.request.pretty_url
        tried: list[Path] = []
        for spec in self.replacements:
            if not (spec.matches(flow) and re.search(spec.regex, url)):
                continue
            candidates = [spec.local_path] if spec.local_path.is_file() else file_candidates(url, spec)
            tried += candidates
            local_file = next((candidate for candidate in candidates if candidate.is_file()), None)
            if local_file is None:
                continue
            try:
                flow.response = file_response(local_file, _buffer_limit())
            except OSError as e:
                _log.warn("map_local: cannot read {path}: {error}", path=local_file, error=e.strerror or e)
                continue
            return
        if tried:
            flow.response = Response.make(404)
            _log.info("map_local: {url}: none of these files exist: {files}", url=url, files=", ".join(map(str, tried)))
