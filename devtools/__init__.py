"""Development tools kept out of the runtime wheel: demo, benchmarks, the process harness.

They run from a checkout (`scripts/demo`, `scripts/bench`, the tests), never from an installed
wheel: paths to the repository's own files start at `ROOT`.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (the directory holding ddc/, dedup_service/ and devtools/)."""
