"""Benchmarks run by `scripts/bench NAME` (`python -m devtools.bench NAME`); each module has main(argv)."""

BENCHES = {
    "link": "an ingress/egress pair on loopback vs a raw Python UDP blast",
    "kafka": "Kafka source → pair → Kafka sink",
    "dedup": "the dedup service",
    "latency": "end-to-end latency (p50/p99/max) of raw, records and FEC pairs",
    "spool": "the egress spool's segment files vs LMDB (append, read, ack)",
    "spool_stalls": "the receive loop's waits in the disk spool, per segment size",
    "redundant": "the redundant stack's highest exactly-once rate vs one Kafka pair",
    "health": "/healthz and /metrics latency (p50/p99/max) of every daemon at full load",
    "dedup_records": "the dedup service's CPU per posted record, POST /v1/records → Kafka sink",
    "redis_claims": "Redis's CPU per record of claim a / commit / claim b vs a pipelined SET NX",
    "udp_receive": "CPU per datagram of the ingress and egress UDP receive loops, pause vs none",
}
