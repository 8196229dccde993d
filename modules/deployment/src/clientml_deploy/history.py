"""The releases of an environment, newest last: what ``make rollback`` returns to.

Kept as one JSON object beside the environment's Terraform state (``<state key's folder>/deployments.json``
in the state bucket): it lives as long as the state, whoever deploys (a laptop or CI) reads the same one,
and it is outside the bundle bucket that ``destroy`` empties. A deploy appends its release once it is
applied (before its smoke test: a release that fails it is still the one to roll back from); a rollback
applies the one before the newest and removes the newest; destroy removes the history. The
deployments of one environment are serialised (the workflow's concurrency group, Terraform's state lock),
so nothing else writes it in between.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import asdict, dataclass
from typing import Any

from clientml_deploy.aws import call, get_object

# As many as the registry keeps tagged images (variable keep_images): older ones could not be rolled back to.
KEEP = 20


@dataclass(frozen=True)
class Release:
    """One applied (image, bundle) pair and the task definition revision Terraform made for it."""

    image_tag: str
    bundle: str
    task_definition: str
    deployed_at: str


@dataclass(frozen=True)
class History:
    """``deployments.json`` of one environment in the state bucket."""

    s3: Any
    bucket: str
    key: str

    @classmethod
    def beside(cls, s3: Any, bucket: str, state_key: str) -> History:
        return cls(s3, bucket, posixpath.join(posixpath.dirname(state_key), "deployments.json"))

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def releases(self) -> list[Release]:
        data = call(f"reading {self.uri}", lambda: get_object(self.s3, self.bucket, self.key))
        return [Release(**item) for item in json.loads(data)["releases"]] if data is not None else []

    def save(self, releases: list[Release]) -> None:
        body = json.dumps({"releases": [asdict(r) for r in releases[-KEEP:]]}, indent=2).encode()
        call(f"writing {self.uri}", lambda: self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body))

    def delete(self) -> None:
        call(f"deleting {self.uri}", lambda: self.s3.delete_object(Bucket=self.bucket, Key=self.key))
