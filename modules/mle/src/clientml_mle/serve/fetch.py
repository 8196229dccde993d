"""The bundle to serve, fetched from S3 before the server starts: the deployed container's side of the
contract in ``modules/deployment/README.md`` ("The container's environment").

``<uri>/CHAMPION`` holds the champion's version (one line); ``<uri>/<version>/`` holds that bundle's files
as ``clientml train`` wrote them. Only the files the bundle's manifest lists are downloaded, into a private
temporary directory of the models directory, which then becomes ``<models_dir>/<version>``, and
``CHAMPION`` is pointed at it. The manifest is checked as it arrives (its content digest is part of its
version), so an altered manifest, or one of another version, stops the fetch before anything else is
downloaded; every other file is checked by the server's own load (SHA-256 and size), which refuses a
tampered object, so such a bundle never serves.

boto3 is imported only when a fetch runs: a server without a bucket never loads it. Credentials and the
endpoint come from the AWS SDK's own chain (the task role on ECS; ``AWS_ENDPOINT_URL`` for an emulator).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clientml_mle.manifest import read_manifest, safe_relative
from clientml_mle.pointers import (
    CHAMPION_FILE,
    MANIFEST_FILE,
    TMP_PREFIX,
    VERSION_PATTERN,
    BundleIntegrityError,
    set_pointer,
)

log = logging.getLogger(__name__)

CHAMPION = "champion"
# The SDK's "standard" retry mode: throttling and transient network errors are retried with backoff.
_RETRIES = {"mode": "standard", "max_attempts": 5}


class BundleFetchError(Exception):
    """The bucket could not be read (bad URI or bundle name, no credentials, access refused, unreachable);
    the message names the object or the setting."""


def fetch_bundle(s3_uri: str, bundle: str, models_dir: Path, *, region: str | None = None) -> str:
    """Download the bundle ``bundle`` (``"champion"`` or a version) from ``s3_uri`` into ``models_dir`` and
    point ``models_dir/CHAMPION`` at it; return its version. The files' hashes are checked by the load
    that follows (:func:`clientml_mle.manifest.verify_bundle`), not here.

    Raises:
        FileNotFoundError: the pointer, the manifest or a listed file is not in the bucket (names the key).
        BundleIntegrityError: the pointer holds no version, or the manifest is altered or of another version.
        BundleFetchError: ``s3_uri`` or ``bundle`` is malformed, or S3 refused or could not be reached.
    """
    bucket, prefix = _parse(s3_uri)
    client = _client(region)
    version = bundle
    if bundle == CHAMPION:
        key = f"{prefix}{CHAMPION_FILE}"
        version = _get(client, bucket, key).decode("utf-8", errors="replace").strip()
        if not VERSION_PATTERN.match(version):
            raise BundleIntegrityError(f"s3://{bucket}/{key}: {version[:80]!r} is not a bundle version")
    elif not VERSION_PATTERN.match(bundle):
        raise BundleFetchError(f"CLIENTML_BUNDLE={bundle!r}: neither {CHAMPION!r} nor a bundle version")
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=models_dir))
    try:
        source = f"{prefix}{version}/"
        (staging / MANIFEST_FILE).write_bytes(_get(client, bucket, source + MANIFEST_FILE))
        manifest = read_manifest(staging)
        if manifest.version != version:
            raise BundleIntegrityError(f"s3://{bucket}/{source}{MANIFEST_FILE}: describes {manifest.version}")
        for rel in manifest.files:
            target = staging / safe_relative(rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_get(client, bucket, source + rel))
        destination = models_dir / version
        if destination.exists():  # an earlier start's copy (a restarted container): replaced, never trusted
            shutil.rmtree(destination)
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    set_pointer(models_dir, version, CHAMPION_FILE)
    log.info("fetched bundle %s (%d files) from s3://%s/%s", version, len(manifest.files), bucket, source)
    return version


def _parse(s3_uri: str) -> tuple[str, str]:
    """(bucket, key prefix ending in "/" or empty) of ``s3://bucket[/prefix]``."""
    parts = urlsplit(s3_uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise BundleFetchError(f"CLIENTML_BUNDLE_S3_URI={s3_uri!r}: not an s3://bucket/prefix URI")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


def _client(region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    # A new session: credentials from the environment of now, not those boto3's default session cached.
    return boto3.session.Session().client("s3", region_name=region, config=Config(retries=_RETRIES))


def _get(client: Any, bucket: str, key: str) -> bytes:
    """The object's bytes; FileNotFoundError or BundleFetchError naming it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404"):
            raise FileNotFoundError(f"s3://{bucket}/{key}: no such object") from None
        raise BundleFetchError(f"s3://{bucket}/{key}: {code or exc}") from None
    except BotoCoreError as exc:
        raise BundleFetchError(f"s3://{bucket}/{key}: {exc}") from None
    return body
