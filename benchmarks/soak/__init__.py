"""The soak test of issue 10: C{python -m benchmarks.soak} (C{make soak}).

It starts the proxy (this work tree's code, as a subprocess) and its own origin servers
on 127.0.0.1, then runs a mixed load for a bounded time while injecting faults at
seeded random moments: keep-alive clients doing small requests, large streamed
downloads and uploads (plain and through TLS interception), WebSocket echo sessions,
dying and silent origins, aborting clients, slow, garbage, oversized and smuggling
request heads, broken TLS. Every body that completes is checked by hash, and a faulted
body must never look complete. The proxy's memory, file descriptors and CLOSE_WAIT
sockets are read from C{/proc}. See docs/reliability.md.

  - L{content}: deterministic bodies from a seed, and their digests;
  - L{wire}: a small asyncio HTTP/1.1 client that says how each body ended;
  - L{origin}: the origin process (HTTP, HTTPS, WebSocket, upload sink, misbehaviour);
  - L{loads}: the normal traffic; L{faults}: the hostile traffic;
  - L{worker}: runs one of them in its own process; L{probe}: C{/proc} readings;
  - L{summary}: the figures, the table and the JSON; C{__main__}: the driver.
"""
