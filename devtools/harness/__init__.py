"""The one process/TOML/metrics harness of the tests, the demo and the benchmarks.

* `toml_files`: `write_toml`, `toml_text`, `toml_value`: config files from dicts.
* `probes`: `get_json`, `post_json`, `get_text`, `parse_metrics`: probes of a daemon's HTTP port.
* `process`: `Process` (a child process on `ServerProcess`, ready when its HTTP port answers),
  `Stack` (processes stopped together), `wait_until`, `wait_progress`, `free_port`, `child_env`.
* `daemons`: `Daemon` (`ddc ROLE -c FILE`), `Pair` (an ingress and its egress on loopback).
"""

from dedup_service.embedded import ServerProcess, free_port, poll_until
from devtools.harness.daemons import DDC, Daemon, Pair
from devtools.harness.probes import get_json, get_text, parse_metrics, post_json
from devtools.harness.process import (
    Process,
    Stack,
    child_env,
    python_argv,
    wait_progress,
    wait_until,
)
from devtools.harness.toml_files import toml_text, toml_value, write_toml

__all__ = [
    "DDC",
    "Daemon",
    "Pair",
    "Process",
    "ServerProcess",
    "Stack",
    "child_env",
    "free_port",
    "get_json",
    "get_text",
    "parse_metrics",
    "poll_until",
    "post_json",
    "python_argv",
    "toml_text",
    "toml_value",
    "wait_progress",
    "wait_until",
    "write_toml",
]
