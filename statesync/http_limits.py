"""daphne answers an oversized request line or header instead of dropping the connection.

Twisted's HTTPChannel reads the request line and each header as a line of at
most 16 KB (LineReceiver.MAX_LENGTH); past that it closed the connection
without a word, so a 110 KB query string looked like a dead server. Past 16 KB
of request line and headers together, and on a malformed request, it wrote a
bare "400 Bad Request" and closed at once, with the client still sending: the
unread data makes the kernel reset the connection, which can destroy the answer
before the client reads it.

`LimitedHTTPChannel` answers 414 (request line), 431 (a header) or 400 with a
body naming the limit, then keeps reading and dropping what the client still
sends for a few seconds, so the answer arrives. `install()` makes daphne's HTTP
factory build it; statesync/asgi.py calls it, so `python -m daphne ...
statesync.asgi:application` serves with it (bin/demo, tests/servers.py).
"""

from __future__ import annotations

from daphne import http_protocol
from twisted.web import http

LIMIT = http.HTTPChannel.MAX_LENGTH  # 16 KB for the request line and for each header line
DRAIN_SECONDS = 10  # how long a refused client may go on sending before it is cut off


class LimitedHTTPChannel(http.HTTPChannel):
    _refused = False

    def lineLengthExceeded(self, line: bytes) -> None:
        # Twisted keeps "still reading the request line" in a name-mangled attribute.
        if getattr(self, "_HTTPChannel__first_line", 0):
            self._refuse(414, b"URI Too Long", f"The request line is over {LIMIT} bytes; send a shorter URL.")
        else:
            self._refuse(431, b"Request Header Fields Too Large", f"A request header is over {LIMIT} bytes.")

    def _respondToBadRequestAndDisconnect(self) -> None:
        self._refuse(
            400,
            b"Bad Request",
            f"Malformed request, or a request line and headers over {self.totalHeadersSize} bytes together.",
        )

    def _refuse(self, code: int, phrase: bytes, message: str) -> None:
        if self._refused:
            return
        self._refused = True
        body = message.encode() + b"\n"
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (code, phrase, len(body), body)
        )
        self._buffer = b""  # nothing more of this request is parsed
        # Close our side once the answer is out, go on reading (and dropping) the
        # client's, and cut it off if it will not stop.
        self.transport.loseWriteConnection()
        self.setTimeout(DRAIN_SECONDS)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return  # drained: no resetTimeout, so DRAIN_SECONDS bounds it
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if not self._refused:
            super().lineReceived(line)

    def rawDataReceived(self, data: bytes) -> None:
        if not self._refused:
            super().rawDataReceived(data)


def _limited_channel(factory: http.HTTPFactory) -> http._GenericHTTPChannelProtocol:
    # What twisted's _genericHTTPChannelProtocolFactory builds, with our channel inside.
    return http._GenericHTTPChannelProtocol(LimitedHTTPChannel())


def install() -> None:
    """Make daphne's HTTP factory build LimitedHTTPChannel (idempotent)."""
    http_protocol.HTTPFactory.protocol = _limited_channel
