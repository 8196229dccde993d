# The whole configuration as `terraform apply` runs it (mocked AWS): the modules fit together, the outputs
# a deploy needs are there, and the root's own input rules hold. Then the KMS key on its own.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  environment = "staging"
  image_tag   = "3f2a9c1"
  api_key     = "test-key-0123456789abcdef0123456789abcdef"
}

run "whole_deployment" {
  command = apply

  assert {
    condition     = output.api_url == "http://clientml-staging-api-1234567890.us-east-1.elb.amazonaws.com"
    error_message = "api_url is the load balancer over HTTP when no domain is given."
  }
  assert {
    condition     = output.repository_url == "123456789012.dkr.ecr.us-east-1.amazonaws.com/clientml-staging/api"
    error_message = "repository_url is where the deploy pushes the image."
  }
  assert {
    condition     = output.bundle_bucket == "clientml-staging-bundles-123456789012" && output.bundle_s3_uri == "s3://clientml-staging-bundles-123456789012/bundles"
    error_message = "The bundle bucket and the URI bundles are uploaded under."
  }
  assert {
    condition     = output.cluster_name == "clientml-staging" && output.service_name == "clientml-staging-api" && output.log_group_name == "/clientml/staging/api"
    error_message = "Cluster, service and log group follow <name>-<environment>."
  }
  assert {
    condition     = startswith(output.api_key_secret_arn, "arn:aws:secretsmanager:") && startswith(output.task_definition_arn, "arn:aws:ecs:")
    error_message = "The secret and task definition ARNs are output for the deploy and the container test."
  }
}

run "emulator_variant_plans" {
  command = plan
  variables {
    omit_resources          = ["autoscaling"]
    force_destroy           = true
    alb_deletion_protection = false
    secret_recovery_days    = 0
  }

  assert {
    condition     = output.bundle_s3_uri == "s3://clientml-staging-bundles-123456789012/bundles"
    error_message = "The emulator variant (no autoscaling, deletable) plans the same deployment."
  }
}

run "rejects_bad_root_inputs" {
  command = plan
  variables {
    name               = "Client_ML"
    environment        = "dev"
    availability_zones = ["eu-west-1a", "eu-west-1b"]
    omit_resources     = ["alarms"]
  }
  expect_failures = [var.name, var.environment, var.availability_zones, var.omit_resources]
}

run "kms_key" {
  command = apply
  module {
    source = "./modules/encryption"
  }
  variables {
    name_prefix             = "clientml-staging"
    log_group_prefix        = "/clientml/staging/"
    deletion_window_in_days = 30
  }

  assert {
    condition     = aws_kms_key.this.enable_key_rotation
    error_message = "The key rotates yearly."
  }
  assert {
    condition = [
      for s in jsondecode(aws_kms_key.this.policy).Statement : s.Condition.ArnLike["kms:EncryptionContext:aws:logs:arn"] if s.Sid == "CloudWatchLogsForOurLogGroups"
    ] == ["arn:aws:logs:us-east-1:123456789012:log-group:/clientml/staging/*"]
    error_message = "CloudWatch Logs may use the key for this deployment's log groups only."
  }
  assert {
    condition     = alltrue([for s in jsondecode(aws_kms_key.this.policy).Statement : s.Principal != "*" && try(s.Principal.AWS, "") != "*"])
    error_message = "No key policy statement may name every principal."
  }
}
