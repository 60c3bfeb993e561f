# -*- test-case-name: tests.test_mitmproxy_doc -*-
"""docs/mitmproxy.md tells the truth: its tables against the option registry, the hook
catalogue and the importable modules."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable

from twisted.trial.unittest import SynchronousTestCase

from tests.test_command import make_master
from twisted_mitm.hooks import all_hooks, mitmproxy_hooks

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "mitmproxy.md")

STATUSES = {"supported", "differently", "not supported", "twisted_mitm only"}
PRESENT = {"supported", "differently", "twisted_mitm only"}

#: mitmproxy 12's options (its options reference: core options and those of its addons).
MITMPROXY_OPTIONS = """
add_upstream_certs_to_client_chain allow_hosts anticache anticomp block_global block_list
block_private body_size_limit cert_passphrase certs ciphers_client ciphers_server
client_certs client_replay client_replay_concurrency command_history confdir connect_addr
connection_strategy console_default_contentview console_eventlog_verbosity
console_flowlist_layout console_focus_follow console_layout console_layout_headers
console_mouse console_palette console_palette_transparent console_quickhelp_visible
console_strip_trailing_newlines content_view_lines_cutoff dns_name_servers
dns_use_hosts_file dumper_default_contentview dumper_filter export_preserve_original_ip
flow_detail hardump http2 http2_ping_keepalive http3 http_connect_send_host_header
ignore_hosts intercept intercept_active keep_alt_svc_header keep_host_header keepserving
key_size listen_host listen_port map_local map_remote mode modify_body modify_headers
normalize_outbound_headers onboarding onboarding_host protobuf_definitions proxy_debug
proxyauth rawtcp readfile_filter request_client_cert rfile save_stream_file
save_stream_filter scripts server server_replay server_replay_extra
server_replay_ignore_content server_replay_ignore_host server_replay_ignore_params
server_replay_ignore_payload_params server_replay_ignore_port server_replay_kill_extra
server_replay_nopop server_replay_refresh server_replay_reuse server_replay_use_headers
show_ignored_hosts showhost ssl_insecure ssl_verify_upstream_trusted_ca
ssl_verify_upstream_trusted_confdir stickyauth stickycookie store_streamed_bodies
stream_large_bodies strip_ech tcp_hosts tcp_timeout termlog_verbosity tls_ecdh_curve_client
tls_ecdh_curve_server tls_version_client_max tls_version_client_min tls_version_server_max
tls_version_server_min udp_hosts upstream_auth upstream_cert validate_inbound_headers
view_filter view_order view_order_reversed web_columns web_debug web_host web_open_browser
web_password web_port web_static_viewer web_theme websocket
""".split()

#: Marked present in the table but not there yet (none: every branch is merged).
PENDING_OPTIONS: dict[str, str] = {}
PENDING_HOOKS: dict[str, str] = {}
PENDING_MODULES: dict[str, str] = {}


def table(section: str) -> dict[str, str]:
    """The rows of one section of docs/mitmproxy.md: name -> status."""
    with open(DOC, encoding="utf-8") as doc:
        text = doc.read()
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match is not None, section
    rows = re.findall(r"^\| `([\w.]+)` \| ([^|]+?) \|", match.group(1), re.MULTILINE)
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), f"{section}: a name is listed twice"
    return dict(rows)


def importable(module: str) -> bool:
    try:
        importlib.import_module(f"twisted_mitm.{module}")
    except ModuleNotFoundError:
        return False
    return True


class MitmproxyDocTests(SynchronousTestCase):
    """Each table of docs/mitmproxy.md against what the proxy has."""

    def check(self, rows: dict[str, str], ours: set[str], pending: dict[str, str], everything: Iterable[str]) -> None:
        self.assertEqual({status for status in rows.values()} - STATUSES, set())
        for name, status in sorted(rows.items()):
            if status not in PRESENT:
                self.assertNotIn(name, ours, f"{name} is marked {status!r} but exists")
            elif name in pending:
                self.assertNotIn(name, ours, f"{name} exists now: take it out of the pending list ({pending[name]})")
            else:
                self.assertIn(name, ours, f"{name} is marked {status!r} but does not exist")
        self.assertEqual(sorted(set(pending) - {name for name, status in rows.items() if status in PRESENT}), [])
        self.assertEqual(sorted(set(everything) - set(rows)), [], "missing from the table")

    def test_options(self) -> None:
        """Every mitmproxy option and every option of ours has a row, and each row's status holds."""
        rows = {**table("Options"), **table("twisted_mitm's own options")}
        ours = set(make_master().options.keys())
        self.check(rows, ours, PENDING_OPTIONS, [*MITMPROXY_OPTIONS, *ours])
        own = table("twisted_mitm's own options")
        self.assertEqual(sorted(set(own) & set(MITMPROXY_OPTIONS)), [])
        self.assertEqual({own[name] for name in own}, {"twisted_mitm only"})

    def test_hooks(self) -> None:
        """Every mitmproxy hook and every hook of ours has a row, and each row's status holds."""
        self.check(table("Hooks"), set(all_hooks), PENDING_HOOKS, [*mitmproxy_hooks, *all_hooks])

    def test_modules(self) -> None:
        """Modules marked present import as twisted_mitm.NAME; the others do not exist."""
        rows = table("Modules scripts import")
        present = {name for name in rows if importable(name)}
        self.check(rows, present, PENDING_MODULES, [])
