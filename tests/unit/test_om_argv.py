"""om command lines and environments as data: exact tuples, no credential in argv."""

from __future__ import annotations

import pytest

from bbr_orchestrator.core.om_argv import (
    CREDENTIAL_VARIABLES,
    OmConnection,
    export_installation_argv,
    global_flags,
    om_environment,
)

URL = "https://opsman.example.internal"


def test_export_with_ca_cert_and_timeout() -> None:
    """The full argv: target, CA certificate, request timeout, then the subcommand and file."""
    connection = OmConnection(
        URL, ca_cert_path="/home/ubuntu/opsman_ca.pem", request_timeout_seconds=7200
    )
    assert export_installation_argv("om", connection, "/work/r1/installation.zip") == (
        "om",
        "--target",
        URL,
        "--ca-cert",
        "/home/ubuntu/opsman_ca.pem",
        "--request-timeout",
        "7200",
        "export-installation",
        "--output-file",
        "/work/r1/installation.zip",
    )


def test_export_skipping_ssl_validation_without_timeout() -> None:
    """--skip-ssl-validation replaces --ca-cert; no timeout given, none passed."""
    connection = OmConnection(URL, skip_ssl_validation=True)
    assert export_installation_argv("/usr/local/bin/om", connection, "i.zip") == (
        "/usr/local/bin/om",
        "--target",
        URL,
        "--skip-ssl-validation",
        "export-installation",
        "--output-file",
        "i.zip",
    )


def test_system_cas_give_no_tls_flag() -> None:
    """Neither a CA file nor skipping: om checks against the system CAs, no flag at all."""
    assert global_flags(OmConnection(URL)) == ("--target", URL)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": ""}, "must not be empty"),
        ({"url": URL, "ca_cert_path": "/ca.pem", "skip_ssl_validation": True}, "not both"),
        ({"url": URL, "request_timeout_seconds": 0}, ">= 1 second"),
    ],
)
def test_bad_connections_are_refused(kwargs: dict[str, object], message: str) -> None:
    """Contradictory or empty connection settings raise ValueError with the reason."""
    with pytest.raises(ValueError, match=message):
        OmConnection(**kwargs)  # type: ignore[arg-type]


def test_output_file_is_required() -> None:
    """An empty output file is refused rather than passed to om."""
    with pytest.raises(ValueError, match="output file"):
        export_installation_argv("om", OmConnection(URL), "")


def test_no_credential_flag_is_ever_built() -> None:
    """No argv the builder can make carries a credential flag."""
    forbidden = {
        "--username",
        "-u",
        "--password",
        "-p",
        "--client-id",
        "-c",
        "--client-secret",
        "-s",
        "--decryption-passphrase",
        "-d",
    }
    for connection in (
        OmConnection(URL),
        OmConnection(URL, skip_ssl_validation=True, request_timeout_seconds=60),
        OmConnection(URL, ca_cert_path="/ca.pem"),
    ):
        assert not forbidden & set(export_installation_argv("om", connection, "f.zip"))


def test_user_credentials_go_to_the_environment() -> None:
    """Username, password and passphrase become OM_* variables; nothing else is set."""
    assert om_environment(username="admin", password="pw", decryption_passphrase="dp") == {
        "OM_USERNAME": "admin",
        "OM_PASSWORD": "pw",
        "OM_DECRYPTION_PASSPHRASE": "dp",
    }


def test_client_credentials_go_to_the_environment() -> None:
    """A UAA client pair becomes OM_CLIENT_ID / OM_CLIENT_SECRET."""
    env = om_environment(client_id="bbr", client_secret="s3cret")
    assert env == {"OM_CLIENT_ID": "bbr", "OM_CLIENT_SECRET": "s3cret"}
    assert set(env) <= set(CREDENTIAL_VARIABLES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"username": "a", "password": "b", "client_id": "c", "client_secret": "d"}, "exactly one"),
        ({"username": "a"}, "go together"),
        ({"client_secret": "d"}, "go together"),
    ],
)
def test_missing_or_doubled_pairs_are_refused(kwargs: dict[str, str], message: str) -> None:
    """Exactly one complete credential pair is accepted."""
    with pytest.raises(ValueError, match=message):
        om_environment(**kwargs)
