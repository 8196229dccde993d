"""Four gaps of moto 5.2.5's server that the deployment's Terraform runs into, closed in the emulator the
tests start (:func:`clientml_testkit.aws_emulator.running_emulator`), each as AWS behaves. Pinned: they
replace moto functions of exactly this version (the root dev group pins it), and refuse any other.

1. ECS ``CreateService`` drops ``deploymentConfiguration`` (circuit breaker, rolling percentages, alarms),
   ``healthCheckGracePeriodSeconds``, ``availabilityZoneRebalancing`` and ``enableExecuteCommand``: the
   next plan drifts and nothing shows the deployment settings. They are kept, as ``UpdateService`` keeps them.
2. EC2 security-group rules that reference another group lose their description (it is kept only for
   CIDR rules): the next plan drifts.
3. S3 ``PutBucketLogging`` checks the target bucket's policy by comparing ARNs as plain strings, and fails
   with a 500 on a statement whose principal is ``"*"`` (our TLS-only deny). The policy is evaluated as
   IAM does: a principal object naming the logging service, wildcards in the resource.
4. S3 object requests are checked against the bucket policy with no request context, a condition whose
   operator moto lacks (``Bool``) counts as met, and a statement whose condition is not met counts as a
   denial: our TLS-only deny (``aws:SecureTransport`` false) refuses every object read and write. The
   emulator serves HTTPS only, so object requests are evaluated as AWS evaluates TLS requests: a statement
   for any principal (``"*"``) applies when its action and resource match (wildcards) and its ``Bool``
   conditions hold for ``aws:SecureTransport = true``; a condition on any other key, which the emulator
   has no value for, does not hold. Statements for named principals are not evaluated (the callers are
   the account's own credentials, allowed by IAM, as moto assumes too).

Not patched: Application Auto Scaling has no ``ListTagsForResource``, which the provider calls on every
read of a scalable target; the emulator run leaves autoscaling out (``omit_resources``) instead.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

PINNED = "5.2.5"
_ECS_KEPT = (
    "deploymentConfiguration",
    "healthCheckGracePeriodSeconds",
    "availabilityZoneRebalancing",
    "enableExecuteCommand",
)
_applied = False


def apply() -> None:
    """Patch the moto server's code in this process (once); RuntimeError for another moto version."""
    global _applied  # noqa: PLW0603  (once per process: the patched functions are module-level)
    import moto

    if moto.__version__ != PINNED:
        raise RuntimeError(f"clientml_testkit.moto_patches is for moto {PINNED}, not {moto.__version__}")
    if _applied:
        return
    _keep_ecs_service_settings()
    _keep_group_rule_descriptions()
    _evaluate_logging_policy()
    _evaluate_bucket_policies_over_tls()
    _applied = True


def _keep_ecs_service_settings() -> None:
    from moto.core.utils import camelcase_to_underscores
    from moto.ecs.responses import EC2ContainerServiceResponse

    create = EC2ContainerServiceResponse.create_service

    def create_service(self: Any) -> Any:
        result = create(self)
        service = self.ecs_backend._get_service(self._get_param("cluster", "default"), self._get_param("serviceName"))
        for name in _ECS_KEPT:
            value = self._get_param(name)
            if value is not None:  # serialised from the attribute of the same name, as UpdateService does
                setattr(service, camelcase_to_underscores(name), value)
        return result

    EC2ContainerServiceResponse.create_service = create_service  # type: ignore[method-assign]


def _keep_group_rule_descriptions() -> None:
    from moto.ec2.models.security_groups import SecurityGroupRule

    def description(self: Any) -> str | None:
        return self.ip_range.get("Description") or self.source_group.get("Description")

    SecurityGroupRule.description = property(description)  # type: ignore[method-assign,assignment]


def _evaluate_logging_policy() -> None:
    from moto.s3.models import LOGGING_SERVICE_PRINCIPAL, FakeBucket

    def allows_logging(target_bucket: Any, target_prefix: str | None) -> bool:
        if not target_bucket.policy:
            return False
        # A log object's key under the prefix: what the service will write.
        key = f"arn:{target_bucket.partition}:s3:::{target_bucket.name}/{target_prefix or ''}log"
        for statement in json.loads(target_bucket.policy.decode())["Statement"]:
            principal = statement.get("Principal")
            if not isinstance(principal, dict) or principal.get("Service") != LOGGING_SERVICE_PRINCIPAL:
                continue
            actions, resources = (_as_list(statement.get(name, [])) for name in ("Action", "Resource"))
            allowed = statement.get("Effect") == "Allow" and "s3:PutObject" in actions
            if allowed and any(fnmatch.fnmatchcase(key, resource) for resource in resources):
                return True
        return False

    FakeBucket._log_permissions_enabled_policy = staticmethod(allows_logging)  # type: ignore[method-assign]


def _evaluate_bucket_policies_over_tls() -> None:
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    context = {"aws:SecureTransport": "true"}  # the emulator serves HTTPS only

    def holds(conditions: dict[str, dict[str, Any]]) -> bool:
        return all(
            operator == "Bool" and key in context and context[key] in [str(v).lower() for v in _as_list(expected)]
            for operator, pairs in conditions.items()
            for key, expected in pairs.items()
        )

    def get_permission(self: Any, action: str, resource: str) -> PermissionResult:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        verdict = PermissionResult.NEUTRAL
        for statement in _as_list(json.loads(self.policy.decode())["Statement"]):
            applies = (
                statement.get("Principal") == "*"
                and any(fnmatch.fnmatchcase(action, a) for a in _as_list(statement["Action"]))
                and any(fnmatch.fnmatchcase(resource, r) for r in _as_list(statement["Resource"]))
                and holds(statement.get("Condition", {}))
            )
            if applies and statement["Effect"] == "Deny":
                return PermissionResult.DENIED
            if applies:
                verdict = PermissionResult.PERMITTED
        return verdict

    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)
