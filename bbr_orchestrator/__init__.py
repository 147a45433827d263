"""bbr-orchestrator: scheduled BOSH Backup and Restore, streamed to S3, recorded in a SQL catalog."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bbr-orchestrator")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
