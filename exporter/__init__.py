"""Prometheus exporter for Veeam Backup Enterprise Manager system sessions."""

__version__ = "0.1.0"
