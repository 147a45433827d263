"""The composition root: builds real adapters from config. The only module that knows both."""

from __future__ import annotations

from bbr_orchestrator.adapters import catalog as sql_catalog
from bbr_orchestrator.config import Config
from bbr_orchestrator.config.secrets import resolve_secret


def catalog_url(config: Config) -> str:
    """The catalog URL with its password (from a secret reference) filled in, if any."""
    url = config.catalog_url()
    if url.startswith("sqlite"):
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if config.catalog.password_secret is None:
        return url
    password = resolve_secret(config.catalog.password_secret).reveal()
    return sql_catalog.with_password(url, password)


def open_catalog(config: Config, *, require_head: bool = True) -> sql_catalog.SqlCatalog:
    """Open the configured catalog; refuses one that is not at the migration head."""
    return sql_catalog.open_catalog(catalog_url(config), require_head=require_head)
