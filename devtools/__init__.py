"""Development tools kept out of the runtime wheel: demo, benchmarks, the process harness."""
