"""The run of `ddc replay` (imported after monkey-patching): the ingress pipeline with a
ReplaySource in place of the Kafka source."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent

from ddc.daemon import serve
from ddc.ingress.filters import FilterChain, build_filter
from ddc.ingress.proxy import IngressProxy
from ddc.ingress.replay import RangeResult, Summary
from ddc.ingress.replay_plan import PlannedRange
from ddc.ingress.sources.base import Source, Submit
from ddc.metrics import IngressMetrics

log = logging.getLogger(__name__)

SLICE = 500  # records per submission


class ReplaySource(Source):
    """Reads the planned ranges from Kafka and submits them; then tells the proxy to stop."""

    def __init__(
        self,
        config: dict[str, Any],
        submit: Submit,
        metrics: IngressMetrics,
        ranges: list[PlannedRange],
        filters: FilterChain,
        settle: float,
        fetch_timeout: float,
        finished: Callable[[], None],
    ) -> None:
        super().__init__(config, submit, metrics)
        self.ranges = ranges
        self.filters = filters
        self.settle = settle
        self.fetch_timeout = fetch_timeout
        self.finished = finished
        self.results: list[RangeResult] = []
        self.consumer: Any = None
        self._stopped = False

    def _options(self) -> dict[str, Any]:
        """kafka-python options for the range reader (none when the source's are librdkafka's)."""
        if self.config.get("client") != "librdkafka":
            return dict(self.config["options"])
        log.warning(
            "ddc replay reads with kafka-python: [ingress.source.options] holds librdkafka "
            'properties (client = "librdkafka"), so none of them is used'
        )
        return {}

    def run(self) -> None:
        from ddc.kafka.fetch import OffsetRange, open_range, range_consumer, read_range

        gevent.sleep(self.settle)
        try:
            self.consumer = range_consumer(self.config["bootstrap_servers"], self._options())
        except Exception as exc:  # kafka-python raises many types for an unreachable broker
            for planned in self.ranges:
                result = self._result(planned)
                result.error = f"Kafka unreachable: {exc!r}"
            self.finished()
            return
        for planned in self.ranges:
            if self._stopped:
                break
            result = self._result(planned)
            try:
                wanted = OffsetRange(*planned.key())
                opened = open_range(self.consumer, wanted)
                if opened.gone is not None:
                    result.gone = list(opened.gone)
                    log.error(
                        "%s/%d offsets %d..%d are no longer in Kafka (log starts at %d): "
                        "cannot be replayed",
                        planned.topic,
                        planned.partition,
                        *opened.gone,
                        opened.log_start,
                    )
                for records in read_range(self.consumer, opened, self.fetch_timeout):
                    self._send(result, records)
                if opened.past_end is not None:
                    result.beyond_log_end = list(opened.past_end)
                    log.error(
                        "%s/%d offsets %d..%d are past the log's end: not in Kafka",
                        planned.topic,
                        planned.partition,
                        *opened.past_end,
                    )
            except Exception as exc:
                result.error = repr(exc)
                log.error("%s/%d: replay failed: %r", planned.topic, planned.partition, exc)
        self.finished()

    def _result(self, planned: PlannedRange) -> RangeResult:
        result = RangeResult(*planned.key(), planned.records)
        self.results.append(result)
        return result

    def _send(self, result: RangeResult, records: list[Any]) -> None:
        self.metrics.records.inc(len(records))
        result.read += len(records)
        kept = self.filters.apply(records) if self.filters else records
        result.filtered += len(records) - len(kept)
        for start in range(0, len(kept), SLICE):
            part = kept[start : start + SLICE]
            self.submit(part, _counter(result, len(part)))

    def stop(self) -> None:
        self._stopped = True

    def close(self, timeout: float) -> None:
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
            self.consumer = None


def _counter(result: RangeResult, count: int) -> Callable[[], None]:
    def ack() -> None:
        result.sent += count

    return ack


def replay(
    config: dict[str, Any],
    ranges: list[PlannedRange],
    settle: float,
    fetch_timeout: float,
    drain_timeout: float,
) -> tuple[int, Summary]:
    """(exit code of the pipeline's run, what was resent); ConfigError if the config is unusable."""
    summary = Summary()
    topics = set(config["source"]["topics"])
    ours = []
    for planned in ranges:
        if planned.topic in topics:
            ours.append(planned)
            continue
        summary.not_ours.append({**planned.range_json(), "records": planned.records})
        log.error(
            "%s/%d offsets %d..%d: not a topic of this ingress (%s): not replayed",
            planned.topic,
            planned.partition,
            planned.first_offset,
            planned.last_offset,
            ", ".join(sorted(topics)),
        )
    if not ours:
        return 0, summary
    # the ingress's own pipeline, without its HTTP server (the ingress's port stays free) and
    # with filters applied by the replay source (to count them per range); nothing is dropped
    # for a full queue
    proxy = IngressProxy(
        {
            **config,
            "http_listen": None,
            "filters": [],
            "transport": {**config["transport"], "queue_policy": "block"},
        }
    )
    filters = FilterChain(
        [build_filter(spec, i) for i, spec in enumerate(config["filters"])], proxy.metrics
    )
    source = ReplaySource(
        config["source"],
        proxy.submit,
        proxy.metrics,
        ours,
        filters,
        settle,
        fetch_timeout,
        proxy.stopping.set,
    )
    proxy.source = source
    log.info(
        "replaying %d ranges (%d records reported lost) to %s",
        len(ours),
        sum(r.records for r in ours),
        config["transport"]["destination"],
    )
    code = serve(proxy, drain_timeout)
    for result in source.results:
        result.finish()
    summary.ranges = source.results
    registry = proxy.metrics.registry
    summary.send_failures = int(
        sum(
            registry.get_sample_value("ddc_ingress_records_dropped_total", {"reason": reason}) or 0
            for reason in ("send_error", "shutdown")
        )
    )
    return code, summary
