"""`ddc-dedup serve`: the API on gevent's WSGI server, the divergence watch, the merge loop."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from gevent.pywsgi import WSGIServer

from ddc.daemon import DRAIN_TIMEOUT, Service
from ddc.errors import ConfigError
from ddc.units import format_hostport, host_port
from ddc.wsgi import NoDelayHandler
from dedup_service.app import create_app
from dedup_service.divergence import DivergenceWatch
from dedup_service.embedded import EmbeddedRedis
from dedup_service.errors import RedisUnavailable
from dedup_service.extension import EXTENSION, Dedup
from dedup_service.merger import MergeLoop
from dedup_service.merger_rd import RdMergeLoop
from dedup_service.metrics import DedupMetrics
from dedup_service.redis_client import connect_configured
from dedup_service.sinks import build_sink
from dedup_service.sinks.base import Sink

log = logging.getLogger(__name__)
EMBEDDED_STATE = "embedded-redis.json"


def _stop_leftover(data_dir: Path) -> None:
    """SIGTERM an embedded Redis a crashed predecessor left running on the same data dir."""
    state = data_dir / EMBEDDED_STATE
    try:
        pid = int(json.loads(state.read_text())["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError):
        return
    if b"redis-server" not in cmdline and b"valkey-server" not in cmdline:
        return
    log.warning("stopping the embedded Redis (pid %d) a previous run left on %s", pid, data_dir)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


class DedupService(Service):
    name = "ddc-dedup"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        self.metrics = DedupMetrics()
        self.embedded: EmbeddedRedis | None = None
        self.sink: Sink | None = None
        self.server: WSGIServer | None = None
        self.merger: MergeLoop | None = None
        self.ext: Dedup | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None, "start() creates the server"
        return host_port(self.server.address)

    def _redis_url(self) -> str:
        if self.config["redis_url"]:
            return self.config["redis_url"]
        data_dir = Path(self.config["data_dir"])
        data_dir.mkdir(parents=True, exist_ok=True)
        _stop_leftover(data_dir)
        self.embedded = EmbeddedRedis(data_dir=data_dir).start()
        assert self.embedded.process is not None
        (data_dir / EMBEDDED_STATE).write_text(
            json.dumps({"pid": self.embedded.process.pid, "port": self.embedded.port})
        )
        log.info("embedded Redis on %s, data in %s", self.embedded.address, data_dir)
        return self.embedded.url

    def start(self) -> None:
        config = self.config
        client = connect_configured(config, self._redis_url())
        self.sink = build_sink(config["sink"])
        self.sink.start()
        app = create_app(config, redis_client=client, sink=self.sink, metrics=self.metrics)
        self.ext = ext = app.extensions[EXTENSION]
        try:
            for warning in ext.store.server_warnings():
                log.warning("%s", warning)
            for link in config["merge"]["links"] if config["merge"] else ():
                ext.store.link_bit(link)  # known to the divergence watch before any record
            ext.store.links(refresh=True)
        except RedisUnavailable as exc:
            log.error("Redis unreachable at start-up (%s): answering 503 until it is back", exc)
        self.server = WSGIServer(
            config["http_listen"], app, log=None, error_log=log, handler_class=NoDelayHandler
        )
        try:
            self.server.start()
        except OSError as exc:
            raise ConfigError("dedup.http_listen", f"cannot listen: {exc}") from None
        watch = DivergenceWatch(ext.store, self.metrics, ext.stats, config["divergence_window"])
        self.spawn(watch.run, self.stopping, name="divergence")
        if config["merge"]:
            loop = RdMergeLoop if config["merge"]["client"] == "librdkafka" else MergeLoop
            self.merger = loop(
                config["merge"],
                ext.forwarder,
                ext.store,
                ext.stats,
                self.metrics,
                config["id_from"],
            )
            self.merger.start()
            ext.health_extras.append(self.merger.health)
            self.spawn(self.merger.run, self.stopping, name="merge")
        log.info(
            "dedup service on http://%s (sink %s, id_from %s, window %gs)",
            format_hostport(self.address),
            config["sink"]["type"],
            config["id_from"],
            config["window"],
        )

    def stop(self, timeout: float = DRAIN_TIMEOUT) -> None:
        self.stopping.set()
        if self.server is not None:
            self.server.stop(timeout=min(timeout, 5.0))
        self.group.join(timeout=timeout)
        self.group.kill(timeout=1.0)
        if self.merger is not None:
            self.merger.close(timeout=min(timeout, 5.0))
        if self.sink is not None:
            self.sink.stop(timeout)
        if self.embedded is not None:
            self.embedded.stop()
            (Path(self.config["data_dir"]) / EMBEDDED_STATE).unlink(missing_ok=True)
        log.info("dedup service stopped")
