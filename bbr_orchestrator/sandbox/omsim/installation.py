"""The installation an Ops Manager exports: a small but real zip, the same for the same URL."""

from __future__ import annotations

import hashlib
import io
import zipfile

DEFAULT_BLOB_SIZE = 384 * 1024
_WHEN = (2026, 1, 1, 0, 0, 0)
ASSETS = "assets/installation-assets.bin"


def _blob(seed: bytes, size: int) -> bytes:
    """Deterministic bytes that do not compress (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:size])


def _yaml(target: str) -> bytes:
    lines = [
        "installation_schema_version: '3.0'",
        f"ops_manager_url: {target}",
        "products:",
        "- identifier: p-bosh",
        "  product_version: 3.0.37",
        "- identifier: cf",
        "  product_version: 6.0.12",
        "- identifier: pivotal-mysql",
        "  product_version: 3.3.1",
    ]
    return ("\n".join(lines) + "\n").encode()


def members(target: str, blob_size: int = DEFAULT_BLOB_SIZE) -> dict[str, bytes]:
    """The exported files: the installation YAML, metadata, two database dumps and assets."""
    seed = hashlib.sha256(target.encode()).digest()
    rows = (f"({i}, 'value {i}')" for i in range(200))
    dump = "".join(f"INSERT INTO settings VALUES {row};\n" for row in rows)  # noqa: S608
    return {
        "installation.yml": _yaml(target),
        "metadata.yml": b"exported_by: omsim\nformat: 1\n",
        "uaa.sql": ("-- uaa database\n" + dump).encode(),
        "credhub.sql": ("-- credhub database\n" + dump).encode(),
        ASSETS: _blob(seed, blob_size),
    }


def installation_zip(target: str, blob_size: int = DEFAULT_BLOB_SIZE) -> bytes:
    """The zip's bytes: text members deflated, the asset blob stored, fixed timestamps."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members(target, blob_size).items():
            info = zipfile.ZipInfo(name, date_time=_WHEN)
            info.compress_type = zipfile.ZIP_STORED if name == ASSETS else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def truncated(data: bytes) -> bytes:
    """The first 60 %: what a download cut short leaves (no end-of-central-directory record)."""
    return data[: len(data) * 3 // 5]


def corrupted(data: bytes) -> bytes:
    """A byte of the last central-directory entry's signature flipped (the zip no longer opens)."""
    first = data.rindex(b"PK\x01\x02", 0, data.rindex(b"PK\x05\x06"))
    damaged = bytearray(data)
    damaged[first + 1] ^= 0xFF
    return bytes(damaged)
