"""`ddc diode-sim`: a one-way UDP relay standing in for a data diode in tests and demos.

Every datagram received on `listen` is sent on to `forward` from a second socket, after seeded
random impairments. Nothing is ever sent toward the sender: the listening socket only receives.

Every datagram is counted exactly once: received + duplicated = forwarded + dropped + queued.
The counts are DiodeSim.counters(), the JSON of GET /healthz, ddc_diode_sim_* on /metrics and
the "diode-sim final:" line on stderr at exit. `dropped_by_type` splits the drops by DDC v1
message type: an egress counts as lost only the data packets (data_first + data) among them.
`receive_buffer_drops` is what the kernel dropped before the relay could read it (/proc/net/udp).

Modules: config (SimConfig), impairment (the seeded fate of each datagram), ratecap (the rate
cap with a finite buffer), counters, relay (DiodeSim: sockets and relay loops), report
(Prometheus, /healthz, the periodic stderr line), cli (`ddc diode-sim`, which monkey-patches
before importing the relay). This package imports nothing itself, so the CLI can patch first.
"""
