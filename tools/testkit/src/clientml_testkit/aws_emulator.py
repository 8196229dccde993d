"""The AWS emulator of the deployment tests: a moto server on a local address, serving HTTPS only (the
buckets' policies refuse plain HTTP, as on AWS) with a certificate of a throwaway CA (trustme), with the gaps
of its pinned version closed (:mod:`clientml_testkit.moto_patches`), and the CI-only ``emulator_override.tf``
that points a copy of ``modules/deployment/terraform`` at it. Every client trusts that CA through
``AWS_CA_BUNDLE`` (boto3, Terraform's provider and its S3 backend), never the system's store.

The production configuration is not changed: Terraform merges ``*_override.tf`` files into the
configuration, so the copy's provider gets the emulator's endpoint for every service the configuration
uses, test credentials, no metadata or credential checks and ``max_retries = 1`` (an emulator gap fails in
seconds, not after minutes of retries); its S3 backend keeps the state in the emulator (with S3-native
locking, as on AWS); and four variables get the values of a throwaway stack: no autoscaling (moto has no
Application Auto Scaling ``ListTagsForResource``), no deletion protection, buckets and images deleted with
the stack, the secret deleted at once.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from clientml_testkit import moto_patches
from clientml_testkit.servers import LOOPBACK

ROOT = Path(__file__).resolve().parents[4]
TERRAFORM_DIR = ROOT / "modules" / "deployment" / "terraform"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's
STATE_BUCKET = "clientml-emulator-tfstate"
# Every AWS API the configuration calls (acm and route53 only with a domain, applicationautoscaling only
# without omit_resources): an API left out here would be called on AWS itself, and fail without credentials.
SERVICES = (
    "acm",
    "applicationautoscaling",
    "cloudwatch",
    "ec2",
    "ecr",
    "ecs",
    "elbv2",
    "iam",
    "kms",
    "logs",
    "route53",
    "s3",
    "secretsmanager",
    "sns",
    "sts",
)
VARIABLES = {
    "omit_resources": '["autoscaling"]',
    "alb_deletion_protection": "false",
    "force_destroy": "true",
    "secret_recovery_days": "0",
    "kms_deletion_window_days": "7",
}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Variables that would send the SDKs elsewhere than the emulator (a profile, a session, real keys' region).
_AWS_VARIABLES_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")

_OVERRIDE = """\
# CI-only (written by clientml_testkit.aws_emulator into a copy of the configuration): the AWS emulator.
terraform {{
  backend "s3" {{
    use_path_style              = true
    skip_credentials_validation = true
    skip_metadata_api_check     = true
    endpoints = {{
      s3  = "{endpoint}"
      sts = "{endpoint}"
    }}
  }}
}}

provider "aws" {{
  access_key                  = "{key}"
  secret_key                  = "{key}"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  max_retries                 = 1

  endpoints {{
{endpoints}
  }}
}}
{variables}"""


@dataclass(frozen=True)
class Emulator:
    """A running moto server: its endpoint, and how to reach it from boto3, Terraform and the deploy tool."""

    endpoint: str
    # The CA that signed the emulator's certificate (PEM).
    ca_bundle: Path

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with the AWS SDKs pointed at the emulator (``AWS_ENDPOINT_URL``, its CA, test credentials)."""
        environment = {name: value for name, value in base.items() if name not in _AWS_VARIABLES_CLEARED}
        return {
            **environment,
            **CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_CA_BUNDLE": str(self.ca_bundle),
            "AWS_REGION": REGION,
        }

    def client(self, service: str) -> Any:
        """A boto3 client of the emulator."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            verify=str(self.ca_bundle),
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def terraform_dir(self, destination: Path) -> Path:
        """A copy of the deployment's configuration at ``destination`` with ``emulator_override.tf``."""
        shutil.copytree(TERRAFORM_DIR, destination, ignore=shutil.ignore_patterns(".terraform", "tests", "*.tfstate*"))
        endpoints = "\n".join(f'    {service} = "{self.endpoint}"' for service in SERVICES)
        variables = "".join(f'\nvariable "{name}" {{\n  default = {value}\n}}\n' for name, value in VARIABLES.items())
        text = _OVERRIDE.format(
            endpoint=self.endpoint, key=CREDENTIALS["AWS_ACCESS_KEY_ID"], endpoints=endpoints, variables=variables
        )
        (destination / "emulator_override.tf").write_text(text)
        return destination


def plugin_dir() -> Path:
    """The AWS provider on disk (``TF_PLUGIN_DIR``, default /opt/tf-plugins) for ``terraform init``; the
    test is unavailable (skipped here, failed in CI) without it or without terraform on PATH."""
    from clientml_deploy.settings import DeploySettings

    from clientml_testkit.fixtures import unavailable

    directory = DeploySettings().tf_plugin_dir or Path("/opt/tf-plugins")
    if shutil.which("terraform") is None or not (directory / "registry.terraform.io/hashicorp/aws").is_dir():
        unavailable(f"terraform on PATH and the AWS provider under {directory} (TF_PLUGIN_DIR)")
    return directory


@contextlib.contextmanager
def running_emulator(directory: Path, host: str = LOOPBACK) -> Iterator[Emulator]:
    """A patched moto server on ``https://<host>:<a free port>`` with an empty state bucket, its CA's
    certificate written into ``directory``; stopped on exit."""
    import trustme
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    moto_patches.apply()
    authority = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(host).configure_cert(tls)
    ca_bundle = directory / "emulator-ca.pem"
    authority.cert_pem.write_to_path(str(ca_bundle))
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(host, 0, app, threaded=True, request_handler=MotoRequestHandler, ssl_context=tls)
    thread = threading.Thread(target=server.serve_forever, name="aws-emulator", daemon=True)
    thread.start()
    try:
        emulator = Emulator(f"https://{host}:{server.server_port}", ca_bundle)
        # moto keeps its data per process: an earlier emulator's resources are dropped first.
        trusted = ssl.create_default_context(cafile=str(ca_bundle))
        httpx.post(f"{emulator.endpoint}/moto-api/reset", verify=trusted, timeout=30).raise_for_status()
        emulator.client("s3").create_bucket(Bucket=STATE_BUCKET)
        yield emulator
    finally:
        server.shutdown()
        thread.join(timeout=30)
