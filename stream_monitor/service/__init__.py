"""The Kafka service: stage 1 (fold per input partition) and stage 2 (merge and test per model) as plain
classes with snapshot/restore and offset bookkeeping, and the worker loop that drives them from Kafka.

Only :mod:`stream_monitor.service.worker` and :mod:`stream_monitor.service.run` touch a Kafka client; the
stage classes and the message formats are testable without a broker.
"""
