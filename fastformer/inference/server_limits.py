"""What slow or idle clients may hold in serve.py's server: at most `max_connections` open connections (one more
closes the longest-idle one with 408, or itself with 503), and `header_timeout` seconds to send a request head. Its
connections also send without Nagle's delay (`no_delay`)."""

from __future__ import annotations

import resource
import socket
from collections import OrderedDict

__all__ = ["FD_RESERVE", "ACCEPT_BACKLOG", "fd_limit", "connection_budget", "no_delay", "limited_h11_protocol"]

ACCEPT_BACKLOG = 128  # connections the kernel queues; asyncio accepts up to this many before a protocol sees them
FD_RESERVE = 2 * ACCEPT_BACKLOG  # file descriptors kept for the accept burst, the model, logs and libraries

_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_BUSY = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n"


def fd_limit() -> int:
    """The process's soft limit on open files (`ulimit -n`)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_budget() -> int:
    """Connections this process can hold open with file descriptors to spare (0 when the limit is too low)."""
    soft = fd_limit()
    return max(0, soft - FD_RESERVE) if soft != resource.RLIM_INFINITY else 1 << 20


def no_delay(transport) -> None:
    """TCP_NODELAY on the transport's TCP socket: an answer's headers and body are written apart, and with Nagle's
    algorithm the body waits for the client's delayed ACK (about 40 ms on Linux). asyncio sets it only where the
    listening socket was made with IPPROTO_TCP named."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # closed meanwhile
            pass


def limited_h11_protocol(max_connections: int, header_timeout: float):
    """A uvicorn `http` protocol class (h11) with the bounds above, for one server."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    if max_connections < 1 or not header_timeout > 0:
        raise ValueError(f"need max_connections >= 1 and header_timeout > 0, got {max_connections}, {header_timeout}")
    waiting: "OrderedDict[H11Protocol, None]" = OrderedDict()  # connections waiting for a request head, oldest first

    class LimitedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            no_delay(transport)
            self._head_timer, self._request = None, None
            if len(self.connections) > max_connections:
                oldest = next(iter(waiting), None)
                if oldest is None:  # every other connection is being answered: this one waits for none of them
                    self._close(_BUSY)
                    return
                oldest._close(_TIMEOUT)
            self._wait_for_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._check_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may start a pipelined request
            if not self.transport.is_closing() and not self._check_head():
                self._wait_for_head()

        def connection_lost(self, exc) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def _check_head(self) -> bool:
            """True (and the head's clock stopped) when a new request's head has arrived."""
            if self.cycle is not None and self.cycle is not self._request:
                self._request = self.cycle
                self._stop_waiting()
                return True
            return False

        def _wait_for_head(self) -> None:
            self._stop_waiting()
            waiting[self] = None
            self._head_timer = self.loop.call_later(header_timeout, self._close, _TIMEOUT)

        def _stop_waiting(self) -> None:
            waiting.pop(self, None)
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _close(self, answer: bytes) -> None:
            self._stop_waiting()
            if not self.transport.is_closing():
                self.transport.write(answer)
                self.transport.close()

    return LimitedH11Protocol
