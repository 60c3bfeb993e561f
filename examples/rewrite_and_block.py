"""A tour of the script API: an option, a blocked path, a rewritten page, a slow hook.

    twistd -n mitm -s examples/rewrite_and_block.py --set blocked_path=/ads
"""

import asyncio
import logging
from typing import Optional

from twisted_mitm import ctx, http


def load(loader):
    loader.add_option(
        name="blocked_path",
        typespec=Optional[str],
        default=None,
        help="Answer requests whose path starts with this with 403, without asking the server.",
    )


def requestheaders(flow: http.HTTPFlow) -> None:
    blocked = ctx.options.blocked_path
    if blocked and flow.request.path.startswith(blocked):
        flow.response = http.Response.make(403, b"blocked by rewrite_and_block.py\n", {"Content-Type": "text/plain"})


async def request(flow: http.HTTPFlow) -> None:
    if "slow" in flow.request.query:
        # Only this flow waits; the proxy keeps serving everyone else.
        await asyncio.sleep(float(flow.request.query["slow"]))


def response(flow: http.HTTPFlow) -> None:
    if flow.response.headers.get("content-type", "").startswith("text/html"):
        flow.response.text = flow.response.text.replace("Example", "Rewritten example")
        logging.info("rewrote %s", flow.request.pretty_url)
