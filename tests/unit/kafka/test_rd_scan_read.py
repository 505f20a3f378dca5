"""rd_scan._read against a stand-in consumer: a partition ends at its EOF or at its first record
stamped after `until_ms`, so a topic written meanwhile is not chased."""

from ddc.kafka.rd_scan import _read

EOF_CODE = -191


class Error:
    def code(self):
        return EOF_CODE


class Message:
    def __init__(self, partition, stamp=0, ident=None, eof=False):
        self._partition, self._stamp, self._eof = partition, stamp, eof
        self._headers = [("ddc-dedup-id", ident.encode())] if ident else []

    def error(self):
        return Error() if self._eof else None

    def partition(self):
        return self._partition

    def timestamp(self):
        return (1, self._stamp)

    def headers(self):
        return self._headers


class Consumer:
    """Partition 0 ends (EOF); partition 1 is written forever: a record a millisecond."""

    def __init__(self):
        self.batches = [
            [Message(0, 100, "a"), Message(1, 100, "b"), Message(0, eof=True)],
            [Message(1, 150, "c")],
        ]
        self.stamp = 150

    def consume(self, count, timeout):
        if self.batches:
            return self.batches.pop(0)
        self.stamp += 1
        return [Message(1, self.stamp, "late")]


def test_a_partition_written_meanwhile_ends_at_its_first_record_stamped_after_until():
    found, scanned = _read(
        Consumer(), {0, 1}, "ddc-dedup-id", {"a", "c", "late"}, 1e18, EOF_CODE, until_ms=200
    )
    assert found == {"a", "c", "late"} and scanned == 53  # records stamped 100-200, then it ends
