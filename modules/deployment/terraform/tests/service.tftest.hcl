# The service module's design, held by mocked applies (no AWS): ports, health check, rolling deployment
# with rollback, private tasks, autoscaling, least-privilege IAM, the API key as a secret, HTTPS.
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
  workers                 = 1
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
    condition     = aws_appautoscaling_policy.cpu[0].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].predefined_metric_type == "ECSServiceAverageCPUUtilization" && aws_appautoscaling_policy.cpu[0].target_tracking_scaling_policy_configuration[0].target_value == 60
    error_message = "One policy must track the service's average CPU."
  }
  assert {
    condition = (
      aws_appautoscaling_policy.requests[0].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].predefined_metric_type == "ALBRequestCountPerTarget" &&
      aws_appautoscaling_policy.requests[0].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].resource_label == "app/clientml-staging-api/50dc6c495c0c9188/targetgroup/clientml-staging-api/6d0ecf831eec9f09"
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
