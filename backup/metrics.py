"""Prometheus metrics of backup runs (exposed by `vaxvault backup schedule --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LAST_SUCCESS = Gauge("vaxvault_backup_last_success_timestamp_seconds",
                     "Unix time of the last successful backup run", ["kind"])
DURATION = Gauge("vaxvault_backup_last_duration_seconds", "Duration of the last backup run", ["kind"])
BYTES = Gauge("vaxvault_backup_last_bytes", "Bytes stored by the last backup run", ["kind"])
ROWS = Gauge("vaxvault_backup_last_rows", "Rows (snapshot) or changes (segment) of the last run", ["kind"])
FAILURES = Counter("vaxvault_backup_failures", "Backup runs that failed", ["kind"])
# Logical capture only: how much more WAL the server may write before the capture slot loses
# some (pg_replication_slots.safe_wal_size; max_slot_wal_keep_size). Alert well above zero: at
# zero the next incremental is refused and a full run is due.
SLOT_SAFE_WAL = Gauge("vaxvault_backup_capture_slot_safe_wal_bytes",
                      "WAL the server may still write before the capture slot loses changes")
