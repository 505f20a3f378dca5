"""DDC wire protocol v1: header codec, fragmentation, reassembly, chunk envelopes."""
