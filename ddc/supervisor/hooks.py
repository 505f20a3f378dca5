"""Running a pair's optional shell hook (on_pause / on_resume / on_down)."""

from __future__ import annotations

import logging
import os

from gevent import subprocess

log = logging.getLogger(__name__)


def run_hook(command: str, env: dict[str, str], timeout: float) -> str:
    """Run `command` with `sh -c`; 'ok', 'failed' or 'timeout'. Never raises."""
    try:
        process = subprocess.Popen(
            command,
            shell=True,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except OSError as exc:
        log.error("hook %r could not start: %s", command, exc)
        return "failed"
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        log.error("hook %r killed after %.1fs", command, timeout)
        return "timeout"
    text = output.decode(errors="replace").strip()
    if process.returncode != 0:
        log.error("hook %r exited with %s: %s", command, process.returncode, text)
        return "failed"
    log.info("hook %r done%s", command, f": {text}" if text else "")
    return "ok"
