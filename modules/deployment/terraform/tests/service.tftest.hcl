# The service module's design, held by mocked applies (no AWS): ports, health check, rolling deployment
# with rollback, private tasks, autoscaling, alarms, least-privilege IAM documents, the API key as a
# secret, the environment contract of the image, HTTPS versus HTTP, and the inputs it refuses.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name_prefix             = "clientml-staging"
  vpc_id                  = "vpc-0a1b2c3d4e5f60718"
  public_subnet_ids       = ["subnet-0000000000000000a", "subnet-0000000000000000b"]
  private_subnet_ids      = ["subnet-0000000000000000c", "subnet-0000000000000000d"]
  repository_url          = "123456789012.dkr.ecr.us-east-1.amazonaws.com/clientml-staging/api"
  repository_arn          = "arn:aws:ecr:us-east-1:123456789012:repository/clientml-staging/api"
  image_tag               = "3f2a9c1"
  bundle_bucket           = "clientml-staging-bundles-123456789012"
  bundle_prefix           = "bundles"
  bundle                  = "champion"
  api_key                 = "test-key-0123456789abcdef0123456789abcdef"
  api_key_version         = 1
  secret_recovery_days    = 7
  cpu                     = 512
  memory                  = 1024
  workers                 = 2
  min_capacity            = 2
  max_capacity            = 20
  autoscaling_enabled     = true
  cpu_target_percent      = 60
  requests_per_target     = 3000
  ingress_cidrs           = ["0.0.0.0/0"]
  alb_deletion_protection = true
  logs_bucket             = "clientml-staging-access-logs-123456789012"
  log_group_prefix        = "/clientml/staging/"
  log_retention_days      = 365
  kms_key_arn             = "arn:aws:kms:us-east-1:123456789012:key/0d7c5f8e-1111-2222-3333-444455556666"
  alarm_5xx_percent       = 1
  alarm_p99_seconds       = 1
}

run "container_and_load_balancer" {
  command = apply
  module {
    source = "./modules/service"
  }

  assert {
    condition     = jsondecode(aws_ecs_task_definition.api.container_definitions)[0].portMappings[0].containerPort == 8000
    error_message = "The container must listen on 8000 (the image's CLIENTML_PORT)."
  }
  assert {
    condition     = aws_lb_target_group.api.port == 8000 && aws_lb_target_group.api.target_type == "ip" && one(aws_ecs_service.api.load_balancer).container_port == 8000
    error_message = "The target group and the service's load balancer entry must forward to the container port 8000 (awsvpc: ip targets)."
  }
  assert {
    condition     = aws_lb_target_group.api.health_check[0].path == "/health/ready" && aws_lb_target_group.api.health_check[0].matcher == "200"
    error_message = "The load balancer must check /health/ready (200 only once a verified model is loaded)."
  }
  assert {
    condition     = strcontains(join(" ", jsondecode(aws_ecs_task_definition.api.container_definitions)[0].healthCheck.command), "/health/ready")
    error_message = "The container's own health check must ask /health/ready too."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.api.container_definitions)[0].image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/clientml-staging/api:3f2a9c1"
    error_message = "The task must run the given tag of this repository's image."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.api.container_definitions)[0].readonlyRootFilesystem && jsondecode(aws_ecs_task_definition.api.container_definitions)[0].user == "10001"
    error_message = "The container must run as the image's user 10001 on a read-only root filesystem."
  }
  assert {
    condition     = aws_lb.api.internal == false && aws_lb.api.drop_invalid_header_fields && aws_lb.api.access_logs[0].enabled
    error_message = "The load balancer must be internet-facing, drop invalid headers and write access logs."
  }
  assert {
    condition     = one(aws_ecs_cluster.this.setting).name == "containerInsights" && one(aws_ecs_cluster.this.setting).value == "enabled"
    error_message = "Container insights must be on."
  }
  assert {
    condition     = aws_cloudwatch_log_group.api.retention_in_days == 365 && aws_cloudwatch_log_group.api.kms_key_id == var.kms_key_arn
    error_message = "The API's log group must have the retention asked for and the deployment's KMS key."
  }
}

run "rolling_deployment_with_rollback" {
  command = apply
  module {
    source = "./modules/service"
  }

  assert {
    condition     = aws_ecs_service.api.deployment_circuit_breaker[0].enable && aws_ecs_service.api.deployment_circuit_breaker[0].rollback
    error_message = "The deployment circuit breaker must be on, with automatic rollback."
  }
  assert {
    condition     = aws_ecs_service.api.deployment_minimum_healthy_percent == 100 && aws_ecs_service.api.deployment_maximum_percent == 200 && aws_ecs_service.api.deployment_controller[0].type == "ECS"
    error_message = "Rolling deployment: new tasks next to the old (200%), old ones kept until the new are healthy (100%)."
  }
  assert {
    condition = (
      aws_ecs_service.api.alarms[0].enable && aws_ecs_service.api.alarms[0].rollback &&
      toset(aws_ecs_service.api.alarms[0].alarm_names) == toset(["clientml-staging-api-5xx-rate", "clientml-staging-api-latency-p99"])
    )
    error_message = "A deployment that sets off the 5xx or latency alarm must roll back."
  }
  assert {
    condition     = aws_ecs_service.api.network_configuration[0].assign_public_ip == false && toset(aws_ecs_service.api.network_configuration[0].subnets) == toset(var.private_subnet_ids)
    error_message = "Tasks must run in the private subnets without a public IP."
  }
  assert {
    condition     = aws_ecs_service.api.launch_type == "FARGATE" && aws_ecs_service.api.enable_execute_command == false
    error_message = "The service runs on Fargate with ECS Exec off."
  }
}

run "autoscaling_on_cpu_and_requests" {
  command = apply
  module {
    source = "./modules/service"
  }

  assert {
    condition     = aws_appautoscaling_target.api[0].min_capacity == 2 && aws_appautoscaling_target.api[0].max_capacity == 20 && aws_appautoscaling_target.api[0].scalable_dimension == "ecs:service:DesiredCount"
    error_message = "The scaling target must be the service's desired count between min and max."
  }
  assert {
    condition     = aws_appautoscaling_policy.api["cpu"].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].predefined_metric_type == "ECSServiceAverageCPUUtilization" && aws_appautoscaling_policy.api["cpu"].target_tracking_scaling_policy_configuration[0].target_value == 60
    error_message = "One policy must track the service's average CPU."
  }
  assert {
    condition = (
      aws_appautoscaling_policy.api["requests"].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].predefined_metric_type == "ALBRequestCountPerTarget" &&
      aws_appautoscaling_policy.api["requests"].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].resource_label == "app/clientml-staging-api/50dc6c495c0c9188/targetgroup/clientml-staging-api/6d0ecf831eec9f09"
    )
    error_message = "One policy must track requests per target of this load balancer's target group."
  }
}

run "alarms_on_5xx_rate_and_p99_latency" {
  command = apply
  module {
    source = "./modules/service"
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.latency_p99.metric_name == "TargetResponseTime" && aws_cloudwatch_metric_alarm.latency_p99.extended_statistic == "p99" && aws_cloudwatch_metric_alarm.latency_p99.threshold == 1
    error_message = "The latency alarm must watch TargetResponseTime's p99."
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.errors_5xx.threshold == 1 &&
      toset([for q in aws_cloudwatch_metric_alarm.errors_5xx.metric_query : one(q.metric[*].metric_name) if length(q.metric) > 0]) == toset(["HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "RequestCount"])
    )
    error_message = "The 5xx alarm must be the share of target and load-balancer 5xx among all requests."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.errors_5xx.alarm_actions == toset([aws_sns_topic.alarms.arn]) && aws_sns_topic.alarms.kms_master_key_id == var.kms_key_arn
    error_message = "Alarms must notify the encrypted alarm topic."
  }
}

run "least_privilege_champion" {
  command = apply
  module {
    source = "./modules/service"
  }

  # No statement of either role grants a wildcard action; "*" as a resource only for the ECR login,
  # which AWS accepts on no other resource.
  assert {
    condition = alltrue(flatten([
      for policy in [aws_iam_role_policy.task.policy, aws_iam_role_policy.execution.policy] : [
        for statement in jsondecode(policy).Statement : [for action in flatten([statement.Action]) : !strcontains(action, "*")]
      ]
    ]))
    error_message = "No IAM action may contain '*'."
  }
  assert {
    condition = alltrue(flatten([
      for policy in [aws_iam_role_policy.task.policy, aws_iam_role_policy.execution.policy] : [
        for statement in jsondecode(policy).Statement : flatten([statement.Action]) == ["ecr:GetAuthorizationToken"] if contains(flatten([statement.Resource]), "*")
      ]
    ]))
    error_message = "Only ecr:GetAuthorizationToken may have Resource '*'."
  }
  assert {
    condition = (
      [for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Resource if s.Sid == "ReadBundle"][0] == ["arn:aws:s3:::clientml-staging-bundles-123456789012/bundles/*"] &&
      [for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Action if s.Sid == "ReadBundle"][0] == ["s3:GetObject"]
    )
    error_message = "With bundle = champion the task reads objects under the bundle prefix only (any version may be the champion)."
  }
  assert {
    condition = (
      [for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Resource if s.Sid == "ListBundle"][0] == ["arn:aws:s3:::clientml-staging-bundles-123456789012"] &&
      [for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Condition.StringLike["s3:prefix"] if s.Sid == "ListBundle"][0] == ["bundles/*"]
    )
    error_message = "ListBucket must be limited to the bundle prefix."
  }
  assert {
    condition     = toset(flatten([for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Action])) == toset(["s3:GetObject", "s3:ListBucket", "kms:Decrypt"])
    error_message = "The task role may read the bundle and decrypt it, nothing else."
  }
  assert {
    condition = (
      [for s in jsondecode(aws_iam_role_policy.execution.policy).Statement : s.Resource if s.Sid == "PullApiImage"][0] == [var.repository_arn] &&
      [for s in jsondecode(aws_iam_role_policy.execution.policy).Statement : s.Resource if s.Sid == "WriteApiLogs"][0] == ["arn:aws:logs:us-east-1:123456789012:log-group:/clientml/staging/api:*"] &&
      [for s in jsondecode(aws_iam_role_policy.execution.policy).Statement : s.Resource if s.Sid == "ReadApiKey"][0] == [aws_secretsmanager_secret.api_key.arn]
    )
    error_message = "The execution role pulls from this repository only, writes this log group only, reads this secret only."
  }
  assert {
    condition = alltrue([
      for policy in [aws_iam_role_policy.task.policy, aws_iam_role_policy.execution.policy] : alltrue([
        for s in jsondecode(policy).Statement : s.Resource == [var.kms_key_arn] && length(keys(s.Condition.StringEquals)) == 1 && contains(keys(s.Condition.StringEquals), "kms:ViaService") if s.Action == ["kms:Decrypt"]
      ])
    ])
    error_message = "kms:Decrypt only on the deployment's key and only through S3 or Secrets Manager."
  }
  assert {
    condition     = aws_iam_role.task.arn != aws_iam_role.execution.arn || aws_iam_role.task.name != aws_iam_role.execution.name
    error_message = "The task and execution roles must be two roles."
  }
  assert {
    condition     = jsondecode(aws_iam_role.task.assume_role_policy).Statement[0].Principal.Service == "ecs-tasks.amazonaws.com" && jsondecode(aws_iam_role.task.assume_role_policy).Statement[0].Condition.StringEquals["aws:SourceAccount"] == "123456789012"
    error_message = "Only ECS tasks of this account may assume the roles."
  }
}

run "least_privilege_pinned_version" {
  command = apply
  module {
    source = "./modules/service"
  }
  variables {
    bundle = "20250101T120000.123456Z-3f2a9c1b7d4e"
  }

  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Resource if s.Sid == "ReadBundle"][0] == ["arn:aws:s3:::clientml-staging-bundles-123456789012/bundles/20250101T120000.123456Z-3f2a9c1b7d4e/*"]
    error_message = "A pinned version reads its own folder only."
  }
  assert {
    condition     = [for s in jsondecode(aws_iam_role_policy.task.policy).Statement : s.Condition.StringLike["s3:prefix"] if s.Sid == "ListBundle"][0] == ["bundles/20250101T120000.123456Z-3f2a9c1b7d4e/*"]
    error_message = "A pinned version lists its own folder only."
  }
}

run "environment_contract_and_secret" {
  command = apply
  module {
    source = "./modules/service"
  }

  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.api.container_definitions)[0].environment : e.name => e.value
      } == {
      AWS_REGION             = "us-east-1"
      CLIENTML_BUNDLE        = "champion"
      CLIENTML_BUNDLE_S3_URI = "s3://clientml-staging-bundles-123456789012/bundles"
      CLIENTML_HOST          = "0.0.0.0"
      CLIENTML_MODELS_DIR    = "/models"
      CLIENTML_PORT          = "8000"
      CLIENTML_RELOAD_POLL_S = "0"
      CLIENTML_WORKERS       = "2"
    }
    error_message = "The container's environment must be exactly the contract in modules/deployment/README.md."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.api.container_definitions)[0].secrets == [{ name = "CLIENTML_API_KEY", valueFrom = aws_secretsmanager_secret.api_key.arn }]
    error_message = "The API key must reach the container from Secrets Manager as CLIENTML_API_KEY, and be its only secret."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.api.container_definitions)[0].command == ["serve"]
    error_message = "The container runs `clientml serve` (the image's entrypoint is clientml)."
  }
  assert {
    condition     = !strcontains(aws_ecs_task_definition.api.container_definitions, var.api_key)
    error_message = "The API key must never appear in the task definition."
  }
  assert {
    condition     = aws_secretsmanager_secret.api_key.kms_key_id == var.kms_key_arn && aws_secretsmanager_secret_version.api_key.secret_string_wo_version == 1 && aws_secretsmanager_secret_version.api_key.secret_string == null
    error_message = "The secret is KMS-encrypted and written write-only (no secret_string in state)."
  }
  assert {
    condition     = toset([for m in jsondecode(aws_ecs_task_definition.api.container_definitions)[0].mountPoints : m.containerPath]) == toset(["/models", "/opt/clientml/state", "/tmp"])
    error_message = "The writable paths of the read-only container are /models, the state dir and /tmp."
  }
}

run "http_only_without_domain" {
  command = apply
  module {
    source = "./modules/service"
  }

  assert {
    condition     = aws_lb_listener.http.port == 80 && one(aws_lb_listener.http.default_action).type == "forward" && length(aws_lb_listener.https) == 0
    error_message = "Without a domain: one HTTP listener on 80 that forwards to the API."
  }
  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.alb_from_clients : r.from_port]) == toset([80])
    error_message = "Without a domain the load balancer opens 80 only."
  }
  assert {
    condition     = output.api_url == "http://clientml-staging-api-1234567890.us-east-1.elb.amazonaws.com"
    error_message = "api_url is the load balancer's DNS name over HTTP."
  }
}

run "https_with_domain" {
  command = apply
  module {
    source = "./modules/service"
  }
  variables {
    domain_name    = "api.example.com"
    hosted_zone_id = "Z0123456789ABCDEFGHIJ"
  }
  assert {
    condition     = aws_lb_listener.https[0].port == 443 && aws_lb_listener.https[0].protocol == "HTTPS" && aws_lb_listener.https[0].ssl_policy == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    error_message = "With a domain: HTTPS on 443 with a TLS 1.2+/1.3 policy."
  }
  assert {
    condition     = aws_lb_listener.https[0].certificate_arn == aws_acm_certificate.api[0].arn && aws_acm_certificate.api[0].domain_name == "api.example.com" && aws_acm_certificate.api[0].validation_method == "DNS"
    error_message = "The 443 listener uses the DNS-validated ACM certificate of the domain."
  }
  assert {
    condition     = one(aws_lb_listener.http.default_action).type == "redirect" && one(one(aws_lb_listener.http.default_action).redirect).protocol == "HTTPS" && one(one(aws_lb_listener.http.default_action).redirect).status_code == "HTTP_301"
    error_message = "With a domain, port 80 redirects to HTTPS."
  }
  assert {
    condition     = toset([for r in aws_vpc_security_group_ingress_rule.alb_from_clients : r.from_port]) == toset([80, 443])
    error_message = "With a domain the load balancer opens 80 (redirect) and 443."
  }
  assert {
    condition     = output.api_url == "https://api.example.com" && aws_route53_record.api[0].name == "api.example.com"
    error_message = "api_url is https://<domain>, aliased to the load balancer."
  }
}

run "tasks_reachable_only_from_the_load_balancer" {
  command = apply
  module {
    source = "./modules/service"
  }

  assert {
    condition     = aws_vpc_security_group_ingress_rule.tasks_from_alb.referenced_security_group_id == aws_security_group.alb.id && aws_vpc_security_group_ingress_rule.tasks_from_alb.from_port == 8000 && aws_vpc_security_group_ingress_rule.tasks_from_alb.to_port == 8000
    error_message = "Tasks accept the container port from the load balancer's security group only."
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.alb_to_tasks.referenced_security_group_id == aws_security_group.tasks.id && aws_vpc_security_group_egress_rule.alb_to_tasks.from_port == 8000
    error_message = "The load balancer may only reach the tasks, on the container port."
  }
  assert {
    condition     = aws_vpc_security_group_egress_rule.tasks_https.from_port == 443 && aws_vpc_security_group_egress_rule.tasks_https.to_port == 443 && aws_vpc_security_group_egress_rule.tasks_https.ip_protocol == "tcp"
    error_message = "Tasks may only go out over HTTPS."
  }
}

run "autoscaling_left_out_for_an_emulator" {
  command = plan
  module {
    source = "./modules/service"
  }
  variables {
    autoscaling_enabled = false
  }

  assert {
    condition     = length(aws_appautoscaling_target.api) == 0 && length(aws_appautoscaling_policy.api) == 0
    error_message = "autoscaling_enabled = false must leave out the scaling target and both policies."
  }
}

run "rejects_bad_inputs" {
  command = plan
  module {
    source = "./modules/service"
  }
  variables {
    memory         = 512
    bundle         = "latest"
    api_key        = "short"
    domain_name    = "api.example.com"
    hosted_zone_id = null
  }
  expect_failures = [var.memory, var.bundle, var.api_key, var.hosted_zone_id]
}
