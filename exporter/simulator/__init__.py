"""A simulated Veeam Backup Enterprise Manager REST API, for tests and demos.

Stands on its own: it never imports the exporter's modules, so it can check them.
"""

from exporter.simulator.em import SimulatedEM
from exporter.simulator.faults import FAULT_KINDS, FAULTS_FOR
from exporter.simulator.job_model import SimJob, SimJobSession, SimTaskSession
from exporter.simulator.model import SimEvent, SimSession
from exporter.simulator.settings import SimulatorSettings
from exporter.simulator.stats import SimStats
from exporter.simulator.tlsutil import OpenSSLMissingError, openssl_available

__all__ = [
    "FAULTS_FOR",
    "FAULT_KINDS",
    "OpenSSLMissingError",
    "SimEvent",
    "SimJob",
    "SimJobSession",
    "SimSession",
    "SimStats",
    "SimTaskSession",
    "SimulatedEM",
    "SimulatorSettings",
    "openssl_available",
]
