"""kafka-python's errors, sorted by what the caller does about them."""

from __future__ import annotations

from kafka import errors as kafka_errors

# About one record (too large, invalid): drop and count it; resending cannot help.
RECORD_REJECTED: tuple[type[BaseException], ...] = (
    TypeError,
    ValueError,
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.InvalidRecordError,
    kafka_errors.CorruptRecordError,
    kafka_errors.RecordListTooLargeError,
)

# The consumer group is moving partitions: an offset commit is refused, not an outage.
REBALANCING: tuple[type[BaseException], ...] = (
    kafka_errors.CommitFailedError,
    kafka_errors.RebalanceInProgressError,
    kafka_errors.IllegalGenerationError,
    kafka_errors.UnknownMemberIdError,
)
