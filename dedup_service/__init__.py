"""The dedup service: merges the copies that redundant links deliver (docs/dedup.md).

A Redis-backed first-wins claim per record id, two-phase (pending until the sink acknowledged),
with conflict detection and per-link divergence counting; a Flask API, an optional Kafka merge
loop and pluggable sinks. `ddc-dedup serve -c dedup.toml` runs it.
"""
