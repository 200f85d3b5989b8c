"""A repository in an S3-compatible bucket (AWS, MinIO, Ceph, R2...) through boto3.

Path-style addressing works with every S3 clone. Transient failures (5xx, throttling, timeouts,
connection resets) are retried by botocore's standard retry mode with exponential backoff;
what still fails becomes one StorageError naming the object and the endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backup.errors import ObjectNotFound, StorageError
from backup.storage.repository import ObjectInfo

MAX_ATTEMPTS = 6
MULTIPART_BYTES = 64 * 1024 * 1024
READ_BYTES = 1 << 20
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Repository:
    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None, region: str | None,
                 url: str | None = None, multipart_bytes: int = MULTIPART_BYTES) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.endpoint_url = endpoint_url
        self.url = url or f"s3://{bucket}/{prefix}"
        config = Config(
            s3={"addressing_style": "path"},
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            connect_timeout=5, read_timeout=30,
            # Checksums on every request would need a body the S3 clone understands; we verify
            # our own SHA-256 after upload instead.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        except (BotoCoreError, ValueError) as exc:
            raise StorageError(f"cannot open {self.url}: {exc}") from exc
        # Files above `multipart_bytes` go up in parts of that size (two at a time); a failed
        # part aborts the whole upload (s3transfer), and an upload a killed run left open is
        # aborted by the next run's clean_incomplete: a partial object is never visible.
        self.transfer = TransferConfig(multipart_threshold=multipart_bytes,
                                       multipart_chunksize=multipart_bytes, max_concurrency=2)

    def _where(self) -> str:
        return f"{self.url}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def _fail(self, action: str, key: str, exc: Exception) -> StorageError:
        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in _MISSING:
            return ObjectNotFound(f"{key} is missing from {self._where()}")
        return StorageError(f"cannot {action} {key} on {self._where()}: {exc}")

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("write", key, exc) from exc

    def put_file(self, key: str, path: Path) -> None:
        try:
            self.client.upload_file(str(path), self.bucket, self.prefix + key, Config=self.transfer)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("write", key, exc) from exc
        except Exception as exc:  # s3transfer wraps failures in its own exception types
            if type(exc).__module__.startswith(("s3transfer", "boto3")):
                raise self._fail("write", key, exc) from exc
            raise

    def get(self, key: str) -> bytes:
        return b"".join(self.stream(key))

    def stream(self, key: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
            try:
                while piece := body.read(READ_BYTES):
                    yield piece
            finally:
                body.close()
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("read", key, exc) from exc

    def head(self, key: str) -> ObjectInfo | None:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise self._fail("inspect", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("inspect", key, exc) from exc
        return ObjectInfo(key, int(response["ContentLength"]))

    def list(self, prefix: str = "", start_after: str = "") -> list[ObjectInfo]:
        found = []
        try:
            # StartAfter: the store skips what sorts before it, so a tail costs what it holds.
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix,
                **({"StartAfter": self.prefix + start_after} if start_after else {}))
            for page in pages:
                for item in page.get("Contents", []):
                    found.append(ObjectInfo(item["Key"][len(self.prefix):], int(item["Size"])))
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("list", prefix or "/", exc) from exc
        return sorted(found, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("delete", key, exc) from exc

    def clean_incomplete(self, prefix: str = "", start_after: str = "") -> int:
        aborted = 0
        try:
            # Only uploads still in progress are listed: few, whatever the bucket holds.
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                for upload in page.get("Uploads", []):
                    if upload["Key"] <= self.prefix + start_after:
                        continue
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])
                    aborted += 1
        except (BotoCoreError, ClientError) as exc:
            raise self._fail("clean up partial uploads under", self.prefix or "/", exc) from exc
        return aborted
