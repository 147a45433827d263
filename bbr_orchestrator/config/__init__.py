"""The typed config: schema, loading with path-named errors, example generation, secrets."""

from bbr_orchestrator.config.loader import load_config, validate_data
from bbr_orchestrator.config.schema import Config

__all__ = ["Config", "load_config", "validate_data"]
