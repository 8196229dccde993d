"""The deployment's Terraform against an AWS emulator (moto, HTTPS on 127.0.0.1): ``apply``, a second ``plan`` that
finds nothing to change, what was created read back with boto3, then ``destroy`` back to empty.

The tests run in file order on one stack (module fixture); the configuration is a copy of
``modules/deployment/terraform`` with the CI-only override of :mod:`clientml_testkit.aws_emulator`, run
through the deploy tool's own Terraform runner. What the emulator cannot prove: modules/deployment/README.md.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from clientml_deploy.settings import DeploySettings, child_environment
from clientml_deploy.terraform import Terraform, backend_config
from clientml_testkit.aws_emulator import ACCOUNT_ID, REGION, STATE_BUCKET, Emulator, plugin_dir, running_emulator
from clientml_testkit.compose import Phases

pytestmark = [pytest.mark.terraform, pytest.mark.slow]

PHASES = Phases(label="emulator")
API_KEY = secrets.token_urlsafe(32)
NAME = "clientml-staging"
VARIABLES = {"environment": "staging", "image_tag": "emulator-test"}


@dataclass(frozen=True)
class Stack:
    emulator: Emulator
    terraform: Terraform
    outputs: dict[str, Any]
    state_key: str

    def client(self, service: str) -> Any:
        return self.emulator.client(service)

    @property
    def key_arn(self) -> str:
        arn: str = self.client("kms").describe_key(KeyId=f"alias/{NAME}")["KeyMetadata"]["Arn"]
        return arn


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory, tmp = plugin_dir(), tmp_path_factory.mktemp("emulator")
    with running_emulator(tmp) as emulator:
        environment = {**emulator.environment(child_environment()), "TF_VAR_api_key": API_KEY}
        terraform = Terraform(emulator.terraform_dir(tmp / "terraform"), environment, directory)
        state_key = DeploySettings(environment="staging").state_key()
        with PHASES.phase("init"):
            terraform.init(backend_config(STATE_BUCKET, state_key, REGION))
        with PHASES.phase("apply"):
            terraform.apply(VARIABLES)
        yield Stack(emulator, terraform, terraform.outputs(), state_key)


def test_a_second_plan_finds_nothing_to_change(stack: Stack) -> None:
    with PHASES.phase("second plan"):
        assert not stack.terraform.has_changes(VARIABLES)


def test_the_registry_keeps_tags_scans_and_expires(stack: Stack) -> None:
    ecr = stack.client("ecr")
    [repository] = ecr.describe_repositories(repositoryNames=[f"{NAME}/api"])["repositories"]
    assert repository["repositoryUri"] == stack.outputs["repository_url"]
    assert repository["imageTagMutability"] == "IMMUTABLE"
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": stack.key_arn}
    rules = json.loads(ecr.get_lifecycle_policy(repositoryName=f"{NAME}/api")["lifecyclePolicyText"])["rules"]
    assert [(r["selection"]["tagStatus"], r["selection"]["countType"], r["action"]["type"]) for r in rules] == [
        ("untagged", "sinceImagePushed", "expire"),
        ("tagged", "imageCountMoreThan", "expire"),
    ]
    assert rules[1]["selection"]["countNumber"] == 20


def test_the_bundle_bucket_is_private_encrypted_versioned_and_tls_only(stack: Stack) -> None:
    s3, bucket = stack.client("s3"), stack.outputs["bundle_bucket"]
    assert bucket == f"{NAME}-bundles-{ACCOUNT_ID}"
    assert stack.outputs["bundle_s3_uri"] == f"s3://{bucket}/bundles"
    [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": stack.key_arn}
    assert rule["BucketKeyEnabled"] is True
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    [statement] = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Deny", "*", "s3:*")
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    logging = s3.get_bucket_logging(Bucket=bucket)["LoggingEnabled"]
    assert logging["TargetBucket"] == f"{NAME}-access-logs-{ACCOUNT_ID}"


def _subnet_ids(stack: Stack, tier: str) -> list[str]:
    subnets = stack.client("ec2").describe_subnets(Filters=[{"Name": "tag:Name", "Values": [f"{NAME}-{tier}-*"]}])
    return sorted(subnet["SubnetId"] for subnet in subnets["Subnets"])


def _group_id(stack: Stack, name: str) -> str:
    groups = stack.client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])
    group_id: str = groups["SecurityGroups"][0]["GroupId"]
    return group_id


def test_the_service_rolls_back_by_itself_and_runs_in_private_subnets(stack: Stack) -> None:
    ecs = stack.client("ecs")
    [service] = ecs.describe_services(cluster=NAME, services=[f"{NAME}-api"])["services"]
    assert service["launchType"] == "FARGATE" and service["taskDefinition"] == stack.outputs["task_definition_arn"]
    deployment = service["deploymentConfiguration"]
    assert (deployment["minimumHealthyPercent"], deployment["maximumPercent"]) == (100, 200)
    assert deployment["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert deployment["alarms"] == {
        "alarmNames": [f"{NAME}-api-5xx-rate", f"{NAME}-api-latency-p99"],
        "enable": True,
        "rollback": True,
    }
    assert service["healthCheckGracePeriodSeconds"] == 90
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    assert network["assignPublicIp"] == "DISABLED"
    assert sorted(network["subnets"]) == _subnet_ids(stack, "private") and len(network["subnets"]) == 2
    assert network["securityGroups"] == [_group_id(stack, f"{NAME}-tasks")]
    [balancer] = service["loadBalancers"]
    assert (balancer["containerName"], balancer["containerPort"]) == ("api", 8000)
    [cluster] = ecs.describe_clusters(clusters=[NAME])["clusters"]
    assert {"name": "containerInsights", "value": "enabled"} in cluster["settings"]


def test_the_task_definition_is_the_container_contract(stack: Stack) -> None:
    definition = stack.client("ecs").describe_task_definition(taskDefinition=stack.outputs["task_definition_arn"])
    [container] = definition["taskDefinition"]["containerDefinitions"]
    assert container["image"] == f"{stack.outputs['repository_url']}:{VARIABLES['image_tag']}"
    assert (container["command"], container["user"], container["readonlyRootFilesystem"]) == (["serve"], "10001", True)
    assert container["portMappings"][0]["containerPort"] == 8000
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment["CLIENTML_BUNDLE_S3_URI"] == stack.outputs["bundle_s3_uri"]
    assert environment["CLIENTML_BUNDLE"] == "champion" and environment["CLIENTML_RELOAD_POLL_S"] == "0"
    assert container["secrets"] == [{"name": "CLIENTML_API_KEY", "valueFrom": stack.outputs["api_key_secret_arn"]}]
    assert API_KEY not in json.dumps(definition, default=str)


def test_the_load_balancer_checks_readiness_on_the_container_port(stack: Stack) -> None:
    elbv2 = stack.client("elbv2")
    [balancer] = elbv2.describe_load_balancers(Names=[f"{NAME}-api"])["LoadBalancers"]
    assert balancer["Type"] == "application" and stack.outputs["api_url"] == f"http://{balancer['DNSName']}"
    assert sorted(zone["SubnetId"] for zone in balancer["AvailabilityZones"]) == _subnet_ids(stack, "public")
    [group] = elbv2.describe_target_groups(Names=[f"{NAME}-api"])["TargetGroups"]
    assert (group["HealthCheckPath"], group["HealthCheckProtocol"], group["Matcher"]) == (
        "/health/ready",
        "HTTP",
        {"HttpCode": "200"},
    )
    assert (group["Port"], group["Protocol"], group["TargetType"]) == (8000, "HTTP", "ip")
    [listener] = elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]
    assert listener["Port"] == 80 and listener["DefaultActions"][0]["TargetGroupArn"] == group["TargetGroupArn"]
    rules = stack.client("ec2").describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [_group_id(stack, f"{NAME}-tasks")]}]
    )["SecurityGroupRules"]
    [ingress] = [rule for rule in rules if not rule["IsEgress"]]
    assert ingress["ReferencedGroupInfo"]["GroupId"] == _group_id(stack, f"{NAME}-alb")
    assert (ingress["FromPort"], ingress["ToPort"]) == (8000, 8000)


def _policy(stack: Stack, role: str, name: str) -> list[dict[str, Any]]:
    document = stack.client("iam").get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    statements: list[dict[str, Any]] = (json.loads(document) if isinstance(document, str) else document)["Statement"]
    return statements


def test_the_roles_have_least_privilege(stack: Stack) -> None:
    iam = stack.client("iam")
    for role in (f"{NAME}-api-execution", f"{NAME}-api-task"):
        [trust] = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
        assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    execution = {s["Sid"]: s for s in _policy(stack, f"{NAME}-api-execution", "start-api-task")}
    assert [sid for sid, s in execution.items() if s["Resource"] == "*"] == ["EcrLogin"]
    assert execution["ReadApiKey"]["Resource"] == [stack.outputs["api_key_secret_arn"]]
    task = {s["Sid"]: s for s in _policy(stack, f"{NAME}-api-task", "read-bundle")}
    assert task["ReadBundle"]["Action"] == ["s3:GetObject"]
    assert task["ReadBundle"]["Resource"] == [f"arn:aws:s3:::{stack.outputs['bundle_bucket']}/bundles/*"]
    statements = [*execution.values(), *task.values()]
    assert not [action for s in statements for action in s["Action"] if "*" in action]


def test_the_api_key_is_in_secrets_manager_only(stack: Stack) -> None:
    secretsmanager = stack.client("secretsmanager")
    arn = stack.outputs["api_key_secret_arn"]
    assert secretsmanager.describe_secret(SecretId=arn)["KmsKeyId"] == stack.key_arn
    assert secretsmanager.get_secret_value(SecretId=arn)["SecretString"] == API_KEY
    state = stack.client("s3").get_object(Bucket=STATE_BUCKET, Key=stack.state_key)["Body"].read().decode()
    assert API_KEY not in state and '"aws_secretsmanager_secret_version"' in state


def test_destroy_leaves_nothing(stack: Stack) -> None:
    key_arn = stack.key_arn
    with PHASES.phase("destroy"):
        stack.terraform.destroy(VARIABLES)
    left = {
        "buckets": [b["Name"] for b in stack.client("s3").list_buckets()["Buckets"] if b["Name"] != STATE_BUCKET],
        "repositories": stack.client("ecr").describe_repositories()["repositories"],
        "clusters": [
            c for c in stack.client("ecs").describe_clusters(clusters=[NAME])["clusters"] if c["status"] != "INACTIVE"
        ],
        "load balancers": stack.client("elbv2").describe_load_balancers()["LoadBalancers"],
        "target groups": stack.client("elbv2").describe_target_groups()["TargetGroups"],
        "vpcs": stack.client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [NAME]}])["Vpcs"],
        "addresses": stack.client("ec2").describe_addresses()["Addresses"],
        "secrets": stack.client("secretsmanager").list_secrets()["SecretList"],
        "roles": [r["RoleName"] for r in stack.client("iam").list_roles()["Roles"] if r["RoleName"].startswith(NAME)],
        "log groups": stack.client("logs").describe_log_groups(logGroupNamePrefix="/clientml/")["logGroups"],
        "topics": stack.client("sns").list_topics()["Topics"],
        "alarms": stack.client("cloudwatch").describe_alarms()["MetricAlarms"],
    }
    assert {what: found for what, found in left.items() if found} == {}
    assert stack.client("kms").describe_key(KeyId=key_arn)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    print(f"[emulator] timings: {json.dumps(PHASES.seconds)}", flush=True)
