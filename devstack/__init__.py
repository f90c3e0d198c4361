"""Real local infrastructure (Kafka in KRaft mode, Redis) run as plain child processes.

Docker is not available on the machines this project runs on, and fakes would hide exactly
the behaviour the services depend on (transactions, consumer groups, AOF durability). So the
test fixtures and ``make run`` both start the genuine servers from this package.
"""

from devstack.kafka import KafkaProcess, kafka_jars_dir
from devstack.ports import PortInUseError, free_port
from devstack.process import ProcessStartError
from devstack.redis import RedisNotInstalledError, RedisProcess

__all__ = [
    "KafkaProcess",
    "PortInUseError",
    "ProcessStartError",
    "RedisNotInstalledError",
    "RedisProcess",
    "free_port",
    "kafka_jars_dir",
]
