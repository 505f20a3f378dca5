"""kafka-python clients made so that a constructor that fails leaves nothing running.

kafka-python (read in 3.0.12) makes its network client first (a selector with a wakeup
socketpair; for a consumer also a running IO thread) and bootstraps after it; when the bootstrap
fails (the broker is down: KafkaTimeoutError after bootstrap_timeout_ms) the constructor raises
and nothing closes that client. Under gevent the leak is worse than two file descriptors: the
selector's io watcher on the wakeup socket stays started, and once the garbage collector frees
the client's other end of the socketpair the socket reads end-of-file for ever, so the watcher
fires on every turn of the hub. The hub then spins at 100 % CPU and is never idle; it stalled the
Kafka sink for good in the 60 s outage test (docs/spool.md, "A stall that was").

create() passes the constructor a `kafka_client` factory (a documented option of the producer,
the consumer and the admin client) that remembers what it made, and closes that when the
constructor raises. A kafka-python whose class has no such option is constructed as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def create(cls: Callable[..., T], *args: Any, **options: Any) -> T:
    """cls(*args, **options); if it raises, the network client it made is closed first."""
    defaults = getattr(cls, "DEFAULT_CONFIG", {})
    make = options.pop("kafka_client", None) or defaults.get("kafka_client")
    if make is None:
        return cls(*args, **options)
    made: list[Any] = []

    def client(**configs: Any) -> Any:
        made.append(made_client := make(**configs))
        return made_client

    try:
        return cls(*args, kafka_client=client, **options)
    except BaseException:
        for leftover in made:
            close_quietly(leftover)
        raise


def close_quietly(client: Any) -> None:
    """Close a network client a failed constructor left; the constructor's error is the one that
    counts, so a failure here is only logged."""
    try:
        client.close()
    except Exception as exc:
        log.debug("closing the network client of a failed Kafka client: %r", exc)
