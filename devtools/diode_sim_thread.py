"""A DiodeSim in a background thread, for tests, the demo and the bench."""

from __future__ import annotations

import threading
from typing import Any

import gevent
from gevent.event import Event

from ddc.diode_sim.config import SimConfig
from ddc.diode_sim.relay import DiodeSim


class DiodeSimThread:
    """A DiodeSim on its own gevent hub in a background thread, for callers that block (plain
    pytest tests with stdlib sockets and time.sleep), which would otherwise starve the relay.

    counters() may be called from any thread: it reads plain ints under the GIL.
    """

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.sim: DiodeSim | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._wakeup: Any = None
        self._stop_timeout = 10.0
        self._thread = threading.Thread(target=self._run, name="diode-sim", daemon=True)

    def start(self, timeout: float = 10.0) -> DiodeSimThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("diode-sim thread did not start")
        if self._failure is not None:
            raise self._failure
        return self

    def _run(self) -> None:
        hub = gevent.get_hub()  # this thread's own hub
        stopping = Event()
        self._wakeup = hub.loop.async_()
        self._wakeup.start(stopping.set)
        try:
            self.sim = DiodeSim(self.config)
            self.sim.start()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        gevent.wait([stopping, self.sim.stopping], count=1)
        self.sim.stop(self._stop_timeout)
        self._wakeup.close()
        hub.destroy(destroy_loop=True)

    @property
    def address(self) -> tuple[str, int]:
        assert self.sim is not None, "not started"
        return self.sim.address

    @property
    def source_address(self) -> tuple[str, int]:
        assert self.sim is not None, "not started"
        return self.sim.source_address

    @property
    def http_address(self) -> tuple[str, int] | None:
        return self.sim.http_address if self.sim else None

    def counters(self) -> dict[str, Any]:
        assert self.sim is not None, "not started"
        return self.sim.counters()

    def stop(self, timeout: float = 10.0) -> None:
        if self._wakeup is None or not self._thread.is_alive():
            return
        self._stop_timeout = timeout
        self._wakeup.send()  # thread-safe: wakes the sim's hub
        self._thread.join(timeout + 5)

    def __enter__(self) -> DiodeSimThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
