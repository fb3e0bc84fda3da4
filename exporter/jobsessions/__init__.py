"""The backup job session feed: every backup server's job runs, read through the EM.

``plan`` (the requests), ``parse`` (streamed QueryResult and BackupJobSession bodies), ``reduce``
(the pure reducer: the counted-UID ledger, per-job state, the immutable view), ``collector``
(the metrics) and ``feed`` (the four put together on the seam of exporter.feed).
"""
