"""Pure builders of ``om`` (the Ops Manager CLI) command lines and environments.

Commands are data: tuples compared by equality in tests and joined with ``shlex.join`` only at
the remote shell. Credentials are never part of a command line: om reads ``OM_USERNAME``,
``OM_PASSWORD``, ``OM_CLIENT_ID``, ``OM_CLIENT_SECRET`` and ``OM_DECRYPTION_PASSPHRASE`` from
its environment, which the remote shell sets from a script on stdin.
"""

from __future__ import annotations

from dataclasses import dataclass

CREDENTIAL_VARIABLES = (
    "OM_USERNAME",
    "OM_PASSWORD",
    "OM_CLIENT_ID",
    "OM_CLIENT_SECRET",
    "OM_DECRYPTION_PASSPHRASE",
)
"""Every environment variable through which om takes a credential."""

INSTALLATION_FILE = "installation.zip"
"""The name of the exported installation, in the run directory and in the bucket."""


@dataclass(frozen=True)
class OmConnection:
    """om's global flags: which Ops Manager, how its certificate is checked, how long to wait.

    ``ca_cert_path`` (a file on the jumpbox) and ``skip_ssl_validation`` exclude each other;
    with neither, om checks the certificate against the jumpbox's system CAs.
    """

    url: str
    ca_cert_path: str | None = None
    skip_ssl_validation: bool = False
    request_timeout_seconds: int | None = None

    def __post_init__(self) -> None:
        if not self.url:
            raise ValueError("the Ops Manager URL must not be empty")
        if self.ca_cert_path is not None and self.skip_ssl_validation:
            raise ValueError("set ca_cert_path or skip_ssl_validation, not both")
        if self.request_timeout_seconds is not None and self.request_timeout_seconds < 1:
            raise ValueError(
                f"request timeout must be >= 1 second, got {self.request_timeout_seconds}"
            )


def global_flags(connection: OmConnection) -> tuple[str, ...]:
    """``--target URL [--ca-cert PATH | --skip-ssl-validation] [--request-timeout N]``."""
    tls: tuple[str, ...] = ()
    if connection.ca_cert_path is not None:
        tls = ("--ca-cert", connection.ca_cert_path)
    elif connection.skip_ssl_validation:
        tls = ("--skip-ssl-validation",)
    timeout: tuple[str, ...] = ()
    if connection.request_timeout_seconds is not None:
        timeout = ("--request-timeout", str(connection.request_timeout_seconds))
    return ("--target", connection.url, *tls, *timeout)


def export_installation_argv(
    om: str, connection: OmConnection, output_file: str
) -> tuple[str, ...]:
    """``om --target URL [tls flag] [--request-timeout N] export-installation --output-file F``.

    Never ``--username``, ``--password``, ``--client-id``, ``--client-secret`` or
    ``--decryption-passphrase``: see :func:`om_environment`.
    """
    if not output_file:
        raise ValueError("export-installation needs an output file")
    return (om, *global_flags(connection), "export-installation", "--output-file", output_file)


def om_environment(
    *,
    username: str | None = None,
    password: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    decryption_passphrase: str | None = None,
) -> dict[str, str]:
    """The environment om reads its credentials from: exactly one of the pairs
    ``username`` + ``password`` or ``client_id`` + ``client_secret``, and optionally the
    decryption passphrase. Raises :class:`ValueError` for a missing or doubled pair."""
    user_pair = (username, password)
    client_pair = (client_id, client_secret)
    if None in user_pair and user_pair != (None, None):
        raise ValueError("username and password go together")
    if None in client_pair and client_pair != (None, None):
        raise ValueError("client_id and client_secret go together")
    if (username is None) == (client_id is None):
        raise ValueError("give exactly one of username + password or client_id + client_secret")
    values = (username, password, client_id, client_secret, decryption_passphrase)
    return {
        name: value
        for name, value in zip(CREDENTIAL_VARIABLES, values, strict=True)
        if value is not None
    }
