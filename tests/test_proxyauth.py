# -*- test-case-name: tests.test_proxyauth -*-
"""The forms of C{proxyauth} beyond C{user:pass}: C{any} and C{@htpasswd} files
(L{twisted_mitm.utils.htpasswd}, L{twisted_mitm.addons.proxyauth})."""

from __future__ import annotations

import os

import bcrypt
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.support import curl, make_master, respond, start_proxy, start_raw_origin
from twisted_mitm.addons.proxyauth import Remembered, validator_for
from twisted_mitm.exceptions import OptionsError
from twisted_mitm.utils.htpasswd import HtpasswdFile

#: What Apache's 'htpasswd -s' writes for the password "password".
SHA_OF_PASSWORD = "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="


def bcrypt_entry(password: str, prefix: str = "$2y$") -> str:
    """A bcrypt hash as Apache's 'htpasswd -B' writes it ($2y$), at the lowest cost to keep tests fast."""
    return prefix + bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()[4:]


class HtpasswdTests(SynchronousTestCase):
    """Reading htpasswd files and checking passwords against them."""

    def test_bcrypt_and_sha(self) -> None:
        """bcrypt ($2y$, $2b$, $2a$) and {SHA} entries check the right password only; unknown users fail."""
        content = "\n".join(
            [
                "# users",
                f"alice:{bcrypt_entry('wonderland')}",
                f"bob:{bcrypt_entry('builder', '$2b$')}",
                f"carol:{bcrypt_entry('singer', '$2a$')}",
                f"dave:{SHA_OF_PASSWORD}",
                "",
            ]
        )
        users = HtpasswdFile(content)
        self.assertEqual(sorted(users.users), ["alice", "bob", "carol", "dave"])
        for user, password in (("alice", "wonderland"), ("bob", "builder"), ("carol", "singer"), ("dave", "password")):
            self.assertTrue(users.check_password(user, password), user)
            self.assertFalse(users.check_password(user, password + "x"), user)
        self.assertFalse(users.check_password("mallory", "password"))

    def test_other_formats_refused(self) -> None:
        """MD5, crypt and plain entries, and lines without a hash, are refused naming file and line."""
        cases = {
            "alice:$apr1$abc$def\n": "users:1: the entry of 'alice' is neither bcrypt nor {SHA}",
            "# ok\nbob:plaintext\n": "users:2: the entry of 'bob' is neither bcrypt nor {SHA}",
            "just-a-name\n": "users:1: not a 'user:hash' line",
            ":{SHA}x\n": "users:1: not a 'user:hash' line",
        }
        for content, message in cases.items():
            error = self.assertRaises(ValueError, HtpasswdFile, content, "users")
            self.assertIn(message, str(error), content)

    def test_damaged_bcrypt_hash(self) -> None:
        """A bcrypt entry that is not a valid hash never matches."""
        self.assertFalse(HtpasswdFile("eve:$2y$10$short\n").check_password("eve", "anything"))


class ValidatorTests(SynchronousTestCase):
    """What each proxyauth value accepts, and the start-up errors."""

    def write(self, content: str) -> str:
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as file:
            file.write(content)
        return path

    def test_forms(self) -> None:
        """user:pass (a colon in the password allowed), any, and @path."""
        single = validator_for("user:pa:ss")
        self.assertTrue(single("user", "pa:ss"))
        self.assertFalse(single("user", "pa"))
        self.assertFalse(single("other", "pa:ss"))
        self.assertTrue(validator_for("any")("whoever", ""))
        users = validator_for("@" + self.write(f"dave:{SHA_OF_PASSWORD}\n"))
        self.assertTrue(users("dave", "password"))
        self.assertFalse(users("dave", "nope"))

    def test_file_errors(self) -> None:
        """A missing file or an unsupported entry is an OptionsError naming it."""
        missing = os.path.abspath(self.mktemp())
        error = self.assertRaises(OptionsError, validator_for, "@" + missing)
        self.assertEqual(str(error), f"proxyauth: cannot read the htpasswd file {missing}: No such file or directory")
        path = self.write("alice:$apr1$abc$def\n")
        error = self.assertRaises(OptionsError, validator_for, "@" + path)
        self.assertIn(f"proxyauth: {path}:1: the entry of 'alice' is neither bcrypt nor {{SHA}}", str(error))

    def test_start_up_refuses_bad_file(self) -> None:
        """With an unsupported htpasswd entry the proxy does not start (the option is refused)."""
        path = self.write("alice:$apr1$abc$def\n")
        error = self.assertRaises(OptionsError, make_master, [f"proxyauth=@{path}"])
        self.assertIn(f"{path}:1:", str(error))

    def test_option_forms(self) -> None:
        """LDAP and values of no known form are refused when the option is set."""
        master = make_master()
        error = self.assertRaises(OptionsError, master.options.set, "proxyauth=ldap:server:user:pass:dn")
        self.assertEqual(str(error), "proxyauth: LDAP authentication is not supported (use user:pass, any or @htpasswd-path)")
        self.assertRaises(OptionsError, master.options.set, "proxyauth=justaname")

    def test_remembered(self) -> None:
        """Accepted credentials are not checked again; refused ones are, every time."""
        calls: list[tuple[str, str]] = []

        def slow(user: str, password: str) -> bool:
            calls.append((user, password))
            return password == "right"

        remembered = Remembered(slow)
        self.assertTrue(remembered("u", "right"))
        self.assertTrue(remembered("u", "right"))
        self.assertFalse(remembered("u", "wrong"))
        self.assertFalse(remembered("u", "wrong"))
        self.assertEqual(calls, [("u", "right"), ("u", "wrong"), ("u", "wrong")])


class ProxyAuthFormsTests(TestCase):
    """proxyauth=any and proxyauth=@htpasswd with real curl."""

    async def status(self, proxy_url: str, url: str, *credentials: str) -> bytes:
        out, err, code = await curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy_url, *credentials, url)
        return out

    async def test_any(self) -> None:
        """any: every user and password passes, but credentials must be given."""
        origin = start_raw_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self, options=["proxyauth=any"])
        self.assertEqual(await self.status(proxy.url, origin.url + "/"), b"407")
        self.assertEqual(await self.status(proxy.url, origin.url + "/", "--proxy-user", "someone:anything"), b"200")
        self.assertNotIn(b"proxy-authorization", origin.requests[0].lower())

    async def test_htpasswd(self) -> None:
        """@path: the file's users with their passwords pass, others get 407."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as file:
            file.write(f"alice:{bcrypt_entry('wonderland')}\ndave:{SHA_OF_PASSWORD}\n")
        origin = start_raw_origin(self, respond(200, b"ok"))
        proxy = start_proxy(self, options=[f"proxyauth=@{path}"])
        self.assertEqual(await self.status(proxy.url, origin.url + "/", "--proxy-user", "alice:wonderland"), b"200")
        self.assertEqual(await self.status(proxy.url, origin.url + "/", "--proxy-user", "dave:password"), b"200")
        self.assertEqual(await self.status(proxy.url, origin.url + "/", "--proxy-user", "alice:password"), b"407")
        self.assertEqual(await self.status(proxy.url, origin.url + "/"), b"407")
