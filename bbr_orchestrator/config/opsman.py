"""The Ops Manager target: its installation is exported with ``om export-installation``.

Kept apart from :mod:`bbr_orchestrator.config.schema` (which puts it in the ``Target`` union)
to keep both modules small.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bbr_orchestrator.config.base import Model as _Model
from bbr_orchestrator.config.types import Duration, Name, SecretRef


class OpsmanTarget(_Model):
    """An Ops Manager, whose installation is exported with `om export-installation`."""

    kind: Literal["opsman"] = Field(description="director, deployment or opsman.")
    name: Name = Field(description="Name of the target.", examples=["opsman"])
    jumpbox: Name = Field(description="Name of the jumpbox that runs om.", examples=["jumpbox-1"])
    url: str = Field(
        description="Ops Manager URL (om's --target).",
        examples=["https://opsman.example.internal"],
    )
    username: str | None = Field(
        default=None,
        description="Ops Manager admin user (with password; or use client_id + client_secret).",
        examples=["admin"],
    )
    password: SecretRef | None = Field(
        default=None,
        description="Password of username; reaches om only through its environment.",
        examples=[{"credential": "opsman_password"}],
    )
    client_id: str | None = Field(
        default=None,
        description="UAA client (with client_secret; or use username + password).",
        examples=["bbr_opsman_client"],
    )
    client_secret: SecretRef | None = Field(
        default=None,
        description="Secret of client_id; reaches om only through its environment.",
        examples=[{"credential": "opsman_client_secret"}],
    )
    decryption_passphrase: SecretRef | None = Field(
        default=None,
        description=(
            "Ops Manager decryption passphrase (om needs it for some operations, such as "
            "importing the installation); reaches om only through its environment."
        ),
        examples=[{"credential": "opsman_decryption_passphrase"}],
    )
    ca_cert_path: str | None = Field(
        default=None,
        description=(
            "Path of the Ops Manager CA certificate ON THE JUMPBOX (or set "
            "skip_ssl_validation; with neither, the jumpbox's system CAs are used)."
        ),
        examples=["/home/ubuntu/opsman_ca.pem"],
    )
    skip_ssl_validation: bool = Field(
        default=False, description="Do not verify the Ops Manager certificate (not recommended)."
    )
    om_path: str = Field(default="om", description="Path of om on the jumpbox.")
    request_timeout: Duration = Field(
        default=timedelta(hours=2),
        description="om's --request-timeout: how long one request to Ops Manager may take.",
    )

    @field_validator("url")
    @classmethod
    def _plain_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        host = (rest if sep else value).split("/", 1)[0]
        if not host or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not an Ops Manager URL (https://host[:port])")
        if sep and scheme not in {"https", "http"}:
            raise ValueError(f"{value!r}: the scheme must be https (or http)")
        if "@" in host:
            raise ValueError("the URL contains credentials; use username/password or client_id")
        return value

    @model_validator(mode="after")
    def _one_login(self) -> OpsmanTarget:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: set both or neither")
        if (self.client_id is None) != (self.client_secret is None):
            raise ValueError("client_id and client_secret go together: set both or neither")
        if (self.username is None) == (self.client_id is None):
            raise ValueError(
                "set exactly one login: username + password, or client_id + client_secret"
            )
        if self.ca_cert_path is not None and self.skip_ssl_validation:
            raise ValueError("set ca_cert_path or skip_ssl_validation: true, not both")
        return self
