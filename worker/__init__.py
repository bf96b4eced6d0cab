"""d1cdc: change-data-capture from Cloudflare D1 (SQLite) to MySQL/PlanetScale through Kafka.

`worker` is the kernel both sides import: config, CLI, envelope, schema mapping and
conversion, DDL, verify, logging, metrics and health.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("d1cdc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
