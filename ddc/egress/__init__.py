"""The egress proxy: UDP from the diode → sender check → reassembly → envelope → sink."""
