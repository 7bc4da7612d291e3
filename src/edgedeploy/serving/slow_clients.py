"""Slow clients (slow-loris): uvicorn's h11 protocol waits for request headers for ever; this one
closes a connection whose request headers have not all arrived ``header_timeout_s`` after it
opened (or after its previous response). Bodies are bounded by the app (``_read_body``)."""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def guarded_h11(header_timeout_s: float) -> type[H11Protocol]:
    """An ``H11Protocol`` class for ``uvicorn.Config(http=...)`` with a header deadline."""

    class GuardedH11Protocol(H11Protocol):
        _deadline = None

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(header_timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            # Still waiting for (the rest of) a request line and headers: a client this slow is holding
            # a connection, not making a request.
            if self.conn.their_state == h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol
