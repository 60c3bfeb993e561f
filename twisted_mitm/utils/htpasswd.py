# -*- test-case-name: tests.test_proxyauth -*-
"""Apache htpasswd files with bcrypt and SHA-1 (C{{SHA}}) entries, as mitmproxy reads them.

Those are the two formats mitmproxy 12 accepts (C{htpasswd -B} and C{htpasswd -s}). Any
other entry (MD5 C{$apr1$}, crypt, plain text) is refused when the file is read, naming
the line, so a proxy never starts with users who can never log in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import bcrypt

_BCRYPT = ("$2a$", "$2b$", "$2y$")
_SHA = "{SHA}"


class HtpasswdFile:
    """The users of an htpasswd file and their password hashes."""

    def __init__(self, content: str, filename: str = "htpasswd") -> None:
        """
        @raise ValueError: a line that is not C{user:hash}, or a hash of another kind;
            the message names C{filename} and the line.
        """
        self.users: dict[str, str] = {}
        for number, line in enumerate(content.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, colon, password_hash = line.partition(":")
            if not user or not colon:
                raise ValueError(f"{filename}:{number}: not a 'user:hash' line")
            if not password_hash.startswith((*_BCRYPT, _SHA)):
                raise ValueError(
                    f"{filename}:{number}: the entry of {user!r} is neither bcrypt nor {_SHA} "
                    "(make one with 'htpasswd -B'); other kinds are not supported"
                )
            self.users[user] = password_hash

    @classmethod
    def from_file(cls, path: str | Path) -> HtpasswdFile:
        """Read a file.

        @raise OSError: it cannot be read.
        @raise ValueError: as the constructor.
        """
        path = Path(path).expanduser()
        return cls(path.read_text("utf-8"), str(path))

    def check_password(self, user: str, password: str) -> bool:
        """Whether C{password} is C{user}'s."""
        password_hash = self.users.get(user)
        if password_hash is None:
            return False
        if password_hash.startswith(_SHA):
            digest = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).digest()
            return hmac.compare_digest(base64.b64encode(digest).decode("ascii"), password_hash[len(_SHA) :])
        try:
            return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("utf-8"))
        except ValueError:  # a damaged hash
            return False
