"""`ddc supervise`: the out-of-band monitor that answers the blind-sender problem (docs/deployment.md).

It polls every pair's ingress and egress `/healthz` over a management network; when an egress is
unreachable or reports its link down for longer than `grace`, it pauses that pair's ingress so
Kafka moves its partitions to healthy pairs, and resumes it when the egress is healthy again.
"""
