"""AWS calls of the deploy tool through boto3, with failures turned into errors that say what is wrong.

Credentials, the endpoint and retries are the SDK's own: a profile, environment keys or the workflow's
OIDC role; ``AWS_ENDPOINT_URL`` for an emulator; the SDK's standard retry mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from clientml_deploy.errors import DeployError

T = TypeVar("T")
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket"})


def client(service: str, region: str) -> Any:
    """A client of a new session: credentials are resolved from the environment now, not from the ones
    ``boto3``'s module-level default session cached at its first use (in one process the environment can change
    between commands, e.g. a test's)."""
    return boto3.session.Session().client(service, region_name=region, config=_CONFIG)


def call(what: str, action: Callable[[], T]) -> T:
    """``action()``; DeployError naming ``what`` when AWS cannot be reached, finds no credentials or refuses."""
    try:
        return action()
    except NoCredentialsError:
        raise DeployError(
            f"{what}: no AWS credentials (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; "
            "in CI the workflow assumes its OIDC role)"
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise DeployError(f"{what}: {error.get('Code', '?')}: {error.get('Message', exc)}") from None
    except BotoCoreError as exc:
        raise DeployError(f"{what}: {exc}") from None


def get_object(s3: Any, bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when there is no such object."""
    try:
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND - {"NoSuchBucket"}:
            return None
        raise
    return body


def account(region: str) -> str:
    """The account of the credentials in use (STS GetCallerIdentity): proves there are working credentials."""
    identity = call("checking the AWS credentials", lambda: client("sts", region).get_caller_identity())
    return str(identity["Account"])
