"""The ingress proxy: source → filters → envelope → fragment → paced UDP toward the diode."""
