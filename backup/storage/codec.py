"""How object bytes are encoded: zstd, then optionally AES-256-GCM bound to the object key.

Encrypted layout: b"VVE1" + 12-byte random nonce + ciphertext-with-tag; the associated data is
the object key, so an object moved to another key fails to decrypt. With a key, encryption is also
the authentication: a reader that has a key refuses any object that is not sealed with it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backup.errors import DecryptionError, FormatError

MAGIC = b"VVE1"
NONCE_BYTES = 12
HEADER_BYTES = len(MAGIC) + NONCE_BYTES
TAG_BYTES = 16  # AES-GCM's tag ends a sealed object
ZSTD_LEVEL = 3
ALGORITHM = "AES-256-GCM"


@dataclass(frozen=True)
class Key:
    """A 32-byte data key and its id (first 16 hex digits of its SHA-256), recorded in manifests."""

    secret: bytes

    @property
    def id(self) -> str:
        return key_id(self.secret)


def key_id(secret: bytes) -> str:
    return hashlib.sha256(b"vaxvault-key-id:" + secret).hexdigest()[:16]


def compress(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)


def decompress(data: bytes) -> bytes:
    try:
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    except zstandard.ZstdError as exc:
        raise not_zstd(exc) from exc


def not_zstd(exc: Exception) -> FormatError:
    return FormatError(f"object is not valid zstd data: {exc}")


def seal(data: bytes, object_key: str, key: Key | None) -> bytes:
    """Encrypt already-compressed bytes for `object_key` when a key is set, else return them."""
    if key is None:
        return data
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key.secret).encrypt(nonce, data, object_key.encode())


def is_sealed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def open_sealed(data: bytes, object_key: str, key: Key | None) -> bytes:
    """Inverse of seal; raise DecryptionError when the object is encrypted and the key is wrong or
    absent, or when a key is set and the object is not sealed (unauthenticated: refused)."""
    if not is_sealed(data):
        if key is not None:
            raise unauthenticated(object_key, key)
        return data
    if key is None:
        raise needs_key(object_key)
    nonce = data[len(MAGIC): HEADER_BYTES]
    try:
        return AESGCM(key.secret).decrypt(nonce, data[HEADER_BYTES:], object_key.encode())
    except (InvalidTag, ValueError) as exc:  # ValueError: cut off inside its nonce
        raise forged(object_key, key) from exc


class SealedStream:
    """open_sealed for an object read in pieces (verify --deep streams objects of any size):
    `feed` returns the plain bytes of each piece as they come (for a sealed object, all but the
    last TAG_BYTES seen, which may be the tag), `finish` the rest once the tag checks out. The
    same refusals as open_sealed; nothing fed is trusted until `finish` has returned."""

    def __init__(self, object_key: str, key: Key | None) -> None:
        self.object_key, self.key = object_key, key
        self.head = b""  # until the header is complete: sealed or not is not known yet
        self.sealed: bool | None = None
        self.held = b""  # the last TAG_BYTES seen: the tag, once the object ends
        self.decryptor: Any = None  # an AES-GCM decryption context once the header is read

    def feed(self, piece: bytes) -> bytes:
        if self.sealed is None:
            self.head += piece
            if len(self.head) < HEADER_BYTES:
                return b""
            piece, self.head = self.head, b""
            self._open(piece[:HEADER_BYTES])
            if self.sealed:
                piece = piece[HEADER_BYTES:]
        if not self.sealed:
            return piece
        data = self.held + piece
        self.held = data[-TAG_BYTES:]
        return self.decryptor.update(data[:-TAG_BYTES])

    def finish(self) -> bytes:
        if self.sealed is None:  # shorter than a seal's header: it can only be plain data
            self._open(self.head)
            return self.head
        if not self.sealed:
            return b""
        try:
            return self.decryptor.finalize_with_tag(self.held)
        except (InvalidTag, ValueError) as exc:
            raise forged(self.object_key, self.key) from exc

    def _open(self, header: bytes) -> None:
        self.sealed = is_sealed(header)
        if self.sealed and self.key is None:
            raise needs_key(self.object_key)
        if not self.sealed and self.key is not None:
            raise unauthenticated(self.object_key, self.key)
        if self.sealed:
            assert self.key is not None
            if len(header) < HEADER_BYTES:  # cut off inside its own header
                raise forged(self.object_key, self.key)
            nonce = header[len(MAGIC):]
            self.decryptor = Cipher(algorithms.AES(self.key.secret), modes.GCM(nonce)).decryptor()
            self.decryptor.authenticate_additional_data(self.object_key.encode())


# The refusals, shared with the streaming reader (SealedStream).
def unauthenticated(object_key: str, key: Key) -> DecryptionError:
    return DecryptionError(
        f"{object_key} is not authenticated (stored unencrypted) in a repository read with key "
        f"{key.id}; vaxvault never writes such an object with a key set, so it was planted or "
        "replaced by someone without the key: it is refused, nothing was read from it")


def needs_key(object_key: str) -> DecryptionError:
    return DecryptionError(
        f"{object_key} is encrypted; set VAXVAULT_BACKUP_ENCRYPTION_KEY to the key it was written with")


def forged(object_key: str, key: Key | None) -> DecryptionError:
    return DecryptionError(
        f"{object_key} cannot be decrypted and authenticated with key {key.id if key else None}: "
        "wrong key, or the object was corrupted or forged; it is refused")


def encode(data: bytes, object_key: str, key: Key | None) -> bytes:
    return seal(compress(data), object_key, key)


def decode(data: bytes, object_key: str, key: Key | None) -> bytes:
    return decompress(open_sealed(data, object_key, key))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
