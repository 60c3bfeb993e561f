"""The twistd plugin: makes ``twistd mitm`` available."""

from twisted.application.service import ServiceMaker

mitm = ServiceMaker(
    "twisted_mitm",
    "twisted_mitm.tap",
    "An intercepting HTTP/HTTPS/WebSocket proxy that streams bodies of any size.",
    "mitm",
)
