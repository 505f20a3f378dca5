"""Spare segment files: segments that left the spool, kept to be written again instead of deleted
(docs/spool.md "Reused segment files").

Why: appending to a new file makes the kernel allocate a page-cache page for every 4 KiB, and
deleting the file frees them again: ~45 us of system time per 60 KB entry on the bench VM, against
~8 us to write over pages a file already has. Rules:

* retire(segment): a segment that left the spool (wholly acknowledged, or dropped whole after
  its entries were counted). While fewer than `keep` spares exist it is renamed to
  `<name>.spare` and format.MARKER is written right after its magic: a spare. Else (or when
  that fails) the caller deletes it, as every segment was before. For a restart a spare is as
  good as deleted: every `*.spare` file is deleted at open (discard_stale).
* take(directory, first_seq): a spare renamed to the new segment's name (`reused`), or None.
  The caller writes its entries at their offsets (never O_APPEND: the file is longer than they
  are), each write followed by MARKER, so that a scan ends cleanly where the entries end; and,
  since a rename is durable only once the directory is fsynced, it fsyncs the directory before
  it fsyncs data into the file (`renamed`).
* clear() at close deletes the spares.

What a crash finds: a kill -9 leaves the page cache as it was: a spare (deleted at open), or a
segment in a reused file (its entries, MARKER or a torn append, older bytes). A power loss may
leave on disk the file's older content under its new name (entries of an older segment, whose
numbers are not the ones due: torn, cut off, counted) or the file under its old name (a spare's,
or a released segment's, which a restart treats as before: deleted when the saved ack covers
it). Entries written since the last sync may be lost either way, as the spool's power-loss rule
allows; nothing synced is.

Disk use beyond max_bytes: at most `keep` files, each at most one segment (segment_bytes plus
the entry that crossed it).
"""

from __future__ import annotations

import logging
import os

from ddc.egress.spool.format import MARKER, SEGMENT_MAGIC, segment_name
from ddc.egress.spool.segments import Segment

log = logging.getLogger(__name__)

SPARE_SUFFIX = ".spare"
KEEP = 2  # spares at most: a release and a rotation alternate in a spool that keeps up


class Spares:
    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self.ready: list[str] = []  # spare files
        self.renamed = False  # a spare became a segment since the directory was last fsynced

    def retire(self, segment: Segment) -> bool:
        """True when the segment's file became a spare (the caller deletes it otherwise)."""
        if len(self.ready) >= self.keep:
            return False
        spare = segment.path + SPARE_SUFFIX
        try:
            os.replace(segment.path, spare)
            _mark_empty(spare)
        except OSError as exc:
            log.warning("spool: cannot keep %s for reuse (%s): deleted", segment.path, exc)
            _unlink(spare)
            return False
        self.ready.append(spare)
        return True

    def take(self, directory: str, first_seq: int) -> Segment | None:
        """A spare as the new segment starting at `first_seq`; None when there is none."""
        while self.ready:
            spare = self.ready.pop()
            path = os.path.join(directory, segment_name(first_seq))
            try:
                os.replace(spare, path)
            except OSError as exc:
                log.warning("spool: cannot reuse %s (%s): deleted", spare, exc)
                _unlink(spare)
                continue
            self.renamed = True
            return Segment(first_seq, path, len(SEGMENT_MAGIC), 0, reused=True)
        return None

    def clear(self) -> None:
        for spare in self.ready:
            _unlink(spare)
        self.ready = []

    @staticmethod
    def discard_stale(directory: str) -> None:
        for name in os.listdir(directory):
            if name.endswith(SPARE_SUFFIX):
                _unlink(os.path.join(directory, name))


def _mark_empty(path: str) -> None:
    """The file's entries end right after its magic."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, MARKER, len(SEGMENT_MAGIC))
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.error("spool: cannot delete %s: %s", path, exc)
