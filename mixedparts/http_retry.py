"""One retry policy for the HTTP clients (the cascade baseline's chat endpoints, the leaderboard client).

httpx's own ``HTTPTransport(retries=N)`` retries failed connections, and only those. A request that
was sent but got no answer in time, lost its connection mid-answer, or was answered with a status
worth trying again (a 5xx, and for some endpoints 429) is retried here, with exponential backoff, by
a transport wrapped around it; the last answer (or error) is what the caller sees.
"""

from __future__ import annotations

import time
from collections.abc import Container

import httpx

SERVER_ERRORS = range(500, 600)


class RetryTransport(httpx.BaseTransport):
    """Up to ``retries`` more tries of a request after a timeout, a dropped connection or a status in
    ``statuses``, waiting ``backoff * 2**k`` seconds (at most ``max_wait``) before the k-th; connection
    failures are left to the wrapped transport's own retries."""

    def __init__(self, transport: httpx.BaseTransport, retries: int, backoff: float = 1.0,
                 statuses: Container[int] = SERVER_ERRORS, max_wait: float = 10.0):
        self.transport, self.retries, self.backoff = transport, retries, backoff
        self.statuses, self.max_wait = statuses, max_wait

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self.transport.handle_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                raise  # the wrapped transport has made its own retries already
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError):
                if attempt == self.retries:
                    raise
            else:
                if response.status_code not in self.statuses or attempt == self.retries:
                    return response
                response.close()
            attempt += 1
            time.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_wait))

    def close(self) -> None:
        self.transport.close()


def retrying_client(retries: int, backoff: float = 1.0, statuses: Container[int] = SERVER_ERRORS,
                    **client_options) -> httpx.Client:
    """An ``httpx.Client`` making up to ``retries + 1`` tries of each request (connection attempts by
    httpx's transport, the rest by :class:`RetryTransport`); ``client_options`` go to ``httpx.Client``.

    A request body must be replayable: bytes, or httpx's multipart upload of an open file, which it
    rewinds before each try.
    """
    transport = RetryTransport(httpx.HTTPTransport(retries=retries), retries, backoff, statuses)
    return httpx.Client(transport=transport, **client_options)
