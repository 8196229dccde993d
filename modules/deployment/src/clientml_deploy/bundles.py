"""The bundle a deployment serves: resolved to a version, checked, and uploaded to the bundle bucket.

The bucket's layout is the container's contract (``<uri>/<version>/<the bundle's files>``,
``<uri>/CHAMPION``). A bundle is checked where it is (every file's SHA-256, :func:`clientml_mle.manifest.read_bundle`)
and exactly the checked bytes are uploaded, its manifest last, so a manifest in the bucket means a complete
upload; a version already there with the same manifest is not uploaded again (a version names its content).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clientml_deploy.aws import call, get_object
from clientml_deploy.errors import DeployError
from clientml_mle.manifest import read_bundle
from clientml_mle.pointers import CHAMPION_FILE, MANIFEST_FILE, BundleIntegrityError, read_pointer

CHAMPION = "champion"


@dataclass(frozen=True)
class BundleBucket:
    """The bundle prefix of the bundle bucket (Terraform's ``bundle_s3_uri`` output)."""

    s3: Any
    bucket: str
    prefix: str

    @classmethod
    def at(cls, s3: Any, uri: str) -> BundleBucket:
        parts = urlsplit(uri)
        return cls(s3, parts.netloc, parts.path.strip("/"))

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}/{key}"

    def read(self, key: str) -> bytes | None:
        return call(f"reading {self.uri(key)}", lambda: get_object(self.s3, self.bucket, f"{self.prefix}/{key}"))

    def write(self, key: str, data: bytes) -> None:
        key = f"{self.prefix}/{key}"
        call(f"uploading s3://{self.bucket}/{key}", lambda: self.s3.put_object(Bucket=self.bucket, Key=key, Body=data))

    def champion(self) -> str | None:
        data = self.read(CHAMPION_FILE)
        return data.decode().strip() if data is not None else None

    def upload(self, bundle_dir: Path) -> None:
        """Check the bundle, then upload its files and its manifest (skipped when already there)."""
        try:
            manifest, contents = read_bundle(bundle_dir)
        except BundleIntegrityError as exc:
            raise DeployError(f"bundle {bundle_dir} fails its checks, not uploaded: {exc}") from None
        manifest_bytes = (bundle_dir / MANIFEST_FILE).read_bytes()
        if self.read(f"{manifest.version}/{MANIFEST_FILE}") == manifest_bytes:
            print(f"bundle {manifest.version}: already in {self.uri()}", flush=True)
            return
        for rel, data in contents.items():
            self.write(f"{manifest.version}/{rel}", data)
        self.write(f"{manifest.version}/{MANIFEST_FILE}", manifest_bytes)
        print(f"bundle {manifest.version}: {len(contents)} files uploaded to {self.uri(manifest.version)}/", flush=True)


def publish(bundle: str, models_dir: Path, bucket: BundleBucket) -> str:
    """The version ``bundle`` (``champion`` or a version: :class:`~clientml_deploy.settings.DeploySettings`
    checks which) names, in the bucket when this returns.

    ``champion``: the local models directory's CHAMPION, uploaded and made the bucket's CHAMPION; else
    the bucket's CHAMPION. A version: uploaded from the models directory when it is there, else it must
    be in the bucket already. DeployError when it is found nowhere or fails its checks.
    """
    local = models_dir if models_dir.is_dir() else None
    if bundle == CHAMPION:
        try:
            version = read_pointer(local, CHAMPION_FILE) if local is not None else None
        except BundleIntegrityError as exc:
            raise DeployError(f"BUNDLE=champion: {exc}") from None
        if version is not None:
            bucket.upload(models_dir / version)
            bucket.write(CHAMPION_FILE, f"{version}\n".encode())
            return version
        champion = bucket.champion()
        if champion is None:
            raise DeployError(
                f"BUNDLE=champion: no CHAMPION pointer in {models_dir} (MODELS_DIR) nor at "
                f"{bucket.uri(CHAMPION_FILE)}; train a model, or set BUNDLE=<version>"
            )
        return champion
    if local is not None and (local / bundle / MANIFEST_FILE).is_file():
        bucket.upload(local / bundle)
    elif bucket.read(f"{bundle}/{MANIFEST_FILE}") is None:
        raise DeployError(f"BUNDLE={bundle}: neither in {models_dir} (MODELS_DIR) nor at {bucket.uri(bundle)}/")
    return bundle
