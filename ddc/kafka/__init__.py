"""The one place that touches kafka-python (ruff's TID251 bans `import kafka` elsewhere).

options    every Kafka client option a config passes goes through a `ClientOptions`
records    Kafka message -> Record (tombstones stay None) and the `ddc-src` header
ranges     a partition's offset range (/gaps, replay): pure data, no kafka-python
clients    the kafka-python names the sources, sinks and the merge loop use
errors     which kafka-python errors mean "this record" and which "a rebalance"
adapter    the kafka-python version check and every use of a kafka-python private name
reachability  whether a client reaches its broker (None until told), each change logged once
gevent_adapter  the producer tuned for one gevent hub (private names too, version-checked)
construct  clients made so that a constructor that fails (broker down) closes what it opened
"""
