"""Forget-set commitments: name a forget set publicly without revealing it, even to a guesser.

A plain hash of the sorted ids can be inverted by anyone who can enumerate candidate ids (3 ids
among 1,000 known ones is 1.7e8 hashes: minutes on one core). The public commitment is therefore
keyed with a secret salt (HMAC, "HMAC: Keyed-Hashing for Message Authentication", RFC 2104)::

    commitment = "hmac-sha256:" + HMAC-SHA256(key=salt, msg="\n".join(sorted(set(ids))))

with a random 32-byte ``salt`` kept privately in the run folder (``commitment_salt.json``). Without
the salt no value is computable from the ids alone; whoever holds the ids AND the salt recomputes
it (``hf-unlearn verify-commitment``). :func:`ids_digest` (the plain hash) stays for private records
only (the S3T ledger), never for anything that leaves the machine.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from .names import COMMITMENT_SALT_FILE
from .writing import atomic_write

SCHEME = "hmac-sha256"


def _message(ids: Iterable[str]) -> bytes:
    return "\n".join(sorted({str(i) for i in ids})).encode("utf-8")


def ids_digest(ids: Iterable[str]) -> str:
    """sha256 of the sorted distinct ids: for PRIVATE records only (it does not resist guessing)."""
    return hashlib.sha256(_message(ids)).hexdigest()


def new_salt() -> bytes:
    return secrets.token_bytes(32)


def forget_set_commitment(ids: Iterable[str], salt: bytes) -> str:
    """``hmac-sha256:<hex>`` of the sorted distinct ids keyed with ``salt`` (see the module docstring)."""
    if len(salt) < 16:
        raise ValueError("a commitment salt must be at least 16 bytes")
    return f"{SCHEME}:" + hmac.new(salt, _message(ids), hashlib.sha256).hexdigest()


def verify_commitment(ids: Iterable[str], salt: bytes, commitment: str) -> bool:
    """True when ``commitment`` is the commitment of exactly these ids under ``salt``."""
    return hmac.compare_digest(forget_set_commitment(ids, salt), commitment.strip())


def load_or_create_salt(folder: str | os.PathLike) -> bytes:
    """The run's salt (``folder/commitment_salt.json``), created on first use (mode 0600)."""
    path = Path(folder) / COMMITMENT_SALT_FILE
    if path.is_file():
        return read_salt(path)
    salt = new_salt()
    write_salt(folder, salt)
    return salt


def write_salt(folder: str | os.PathLike, salt: bytes) -> Path:
    """Write ``folder/commitment_salt.json`` atomically, readable by its owner only (0600 from the start)."""
    text = json.dumps({"scheme": SCHEME, "salt_hex": salt.hex()}, indent=1, sort_keys=True) + "\n"

    def write(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")

    return atomic_write(Path(folder) / COMMITMENT_SALT_FILE, write, mode=0o600)


def read_salt(path: str | os.PathLike) -> bytes:
    """A salt file written by :func:`load_or_create_salt` (or a bare hex string)."""
    text = Path(path).read_text(encoding="utf-8").strip()
    try:
        value = json.loads(text)["salt_hex"] if text.startswith("{") else text
        return bytes.fromhex(value)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a commitment salt (expected {COMMITMENT_SALT_FILE} or a hex string)") from exc
