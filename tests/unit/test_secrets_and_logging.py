"""Secret references resolve from env, files and systemd credentials; logs never show them."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
import structlog

from bbr_orchestrator.config.secrets import resolve_secret
from bbr_orchestrator.config.types import SecretReference
from bbr_orchestrator.errors import SecretError
from bbr_orchestrator.log import REDACTED, configure_logging, get_logger


def test_env_secret_resolves_and_is_masked_in_repr() -> None:
    """An env reference reads the variable; repr/str never show the value."""
    secret = resolve_secret(SecretReference(env="BOSH_SECRET"), {"BOSH_SECRET": "v4lue-xyz"})
    assert secret.reveal() == "v4lue-xyz"
    assert "v4lue-xyz" not in repr(secret) and "v4lue-xyz" not in str(secret)
    assert "env:BOSH_SECRET" in repr(secret)


def test_missing_env_secret_names_the_reference() -> None:
    """A reference to an unset variable fails naming the variable."""
    with pytest.raises(SecretError, match="env:NOPE: environment variable is not set"):
        resolve_secret(SecretReference(env="NOPE"), {})


def test_file_secret_strips_trailing_newline(tmp_path: Path) -> None:
    """A file reference reads the file and drops the trailing newline."""
    path = tmp_path / "s"
    path.write_text("filesecret\n", encoding="utf-8")
    assert resolve_secret(SecretReference(file=str(path)), {}).reveal() == "filesecret"


def test_credential_secret_reads_credentials_directory(tmp_path: Path) -> None:
    """A credential reference reads $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=)."""
    (tmp_path / "bosh").write_text("credsecret", encoding="utf-8")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert resolve_secret(SecretReference(credential="bosh"), env).reveal() == "credsecret"
    with pytest.raises(SecretError, match=r"CREDENTIALS_DIRECTORY is not set"):
        resolve_secret(SecretReference(credential="bosh"), {})
    with pytest.raises(SecretError, match="cannot read"):
        resolve_secret(SecretReference(credential="other"), env)


def test_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    """An empty secret file is refused rather than passed on as an empty password."""
    path = tmp_path / "empty"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(SecretError, match="is empty"):
        resolve_secret(SecretReference(file=str(path)), {})


def _capture_json() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    return stream


def test_logs_are_json_off_a_terminal_and_stdlib_goes_through_the_same_pipeline() -> None:
    """structlog events and stdlib (third-party) records both come out as JSON lines."""
    stream = _capture_json()
    structlog.contextvars.bind_contextvars(run_id="r-1")
    try:
        get_logger("test").info("bbr_started", target="cf")
        logging.getLogger("paramiko.transport").warning("kex done for %s", "host")
    finally:
        structlog.contextvars.clear_contextvars()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "bbr_started" and first["run_id"] == "r-1" and first["target"] == "cf"
    assert second["event"] == "kex done for host" and second["logger"] == "paramiko.transport"
    assert second["level"] == "warning"


def test_resolved_secrets_and_sensitive_keys_are_redacted() -> None:
    """A resolved secret value is masked in any log line, as is any field named like a secret."""
    stream = _capture_json()
    secret = resolve_secret(SecretReference(env="S"), {"S": "p@ssw0rd-4-redaction"})
    log = get_logger("test")
    log.info("bbr_output", line=f"using {secret.reveal()} now")
    log.info("connect", password="plain-field-value")
    logging.getLogger("botocore").warning("header %s", secret.reveal())
    text = stream.getvalue()
    assert "p@ssw0rd-4-redaction" not in text and "plain-field-value" not in text
    assert text.count(REDACTED) == 3


def test_datetimes_in_log_events_are_iso_8601() -> None:
    """A datetime field renders as ISO 8601 in a JSON log line, not as a Python repr."""
    import io
    import json
    from datetime import UTC, datetime

    import structlog

    from bbr_orchestrator.log import configure_logging

    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    structlog.get_logger("t").info(
        "firing_claimed", scheduled_for=datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    )
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["scheduled_for"] == "2026-11-27T02:00:00+00:00"
