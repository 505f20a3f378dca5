"""The run of `ddc replay`: the ingress pipeline with a ReplaySource in place of the Kafka source."""

from __future__ import annotations

import logging
from typing import Any

from ddc.daemon import serve
from ddc.ingress.filters import FilterChain, build_filter
from ddc.ingress.proxy import IngressProxy
from ddc.ingress.replay import ReplaySource, Summary
from ddc.ingress.replay_plan import PlannedRange

log = logging.getLogger(__name__)


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
        summary.not_ours.append(
            {
                "topic": planned.topic,
                "partition": planned.partition,
                "first_offset": planned.first,
                "last_offset": planned.last,
                "records": planned.records,
            }
        )
        log.error(
            "%s/%d offsets %d..%d: not a topic of this ingress (%s): not replayed",
            planned.topic,
            planned.partition,
            planned.first,
            planned.last,
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
