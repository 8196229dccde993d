# The model API on ECS Fargate: the cluster, the task definition (the container's contract with the image,
# README "The container's environment") and the service behind the load balancer (load_balancer.tf).
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  # The API image listens here (its CLIENTML_PORT); the target group forwards to the same port.
  container_name = "api"
  container_port = 8000
  health_path    = "/health/ready"
  models_dir     = "/models"
  bundle_s3_uri  = "s3://${var.bundle_bucket}/${var.bundle_prefix}"

  # Built from a map so that the list is sorted by name, as ECS returns it (no diff on every plan).
  environment = {
    AWS_REGION             = data.aws_region.current.name
    CLIENTML_BUNDLE        = var.bundle
    CLIENTML_BUNDLE_S3_URI = local.bundle_s3_uri
    CLIENTML_HOST          = "0.0.0.0"
    CLIENTML_MODELS_DIR    = local.models_dir
    CLIENTML_PORT          = tostring(local.container_port)
    CLIENTML_RELOAD_POLL_S = "0"
    CLIENTML_WORKERS       = tostring(var.workers)
  }

  # The root filesystem is read-only; these are the only writable paths, each an empty task-scoped
  # volume (the image must declare them as VOLUMEs so that Fargate gives them to its user 10001).
  writable_paths = {
    models = local.models_dir
    state  = "/opt/clientml/state"
    tmp    = "/tmp"
  }
}

resource "aws_ecs_cluster" "this" {
  name = var.name_prefix

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  # ECS Exec stays off on the service (enable_execute_command = false); should someone turn it on, its
  # sessions are encrypted with our key and logged.
  configuration {
    execute_command_configuration {
      kms_key_id = var.kms_key_arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.api.name
      }
    }
  }
}

resource "aws_cloudwatch_log_group" "api" {
  name              = "${var.log_group_prefix}api"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${var.name_prefix}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  dynamic "volume" {
    for_each = local.writable_paths
    content {
      name = volume.key
    }
  }

  container_definitions = jsonencode([{
    name      = local.container_name
    image     = "${var.repository_url}:${var.image_tag}"
    essential = true
    # The image's ENTRYPOINT is `clientml`: this runs `clientml serve`, which fetches and verifies the
    # bundle named by CLIENTML_BUNDLE before it starts its workers (README "The container's environment").
    command                = ["serve"]
    user                   = "10001"
    readonlyRootFilesystem = true
    privileged             = false
    portMappings           = [{ containerPort = local.container_port, hostPort = local.container_port, protocol = "tcp" }]
    environment            = [for name, value in local.environment : { name = name, value = value }]
    secrets                = [{ name = "CLIENTML_API_KEY", valueFrom = aws_secretsmanager_secret.api_key.arn }]
    mountPoints            = [for name, path in local.writable_paths : { sourceVolume = name, containerPath = path, readOnly = false }]
    linuxParameters        = { initProcessEnabled = true }
    stopTimeout            = 30
    # The image has no curl: Python asks the API itself. The start period covers the bundle download and
    # its verification; the load balancer's own check (same path) decides traffic.
    healthCheck = {
      command     = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${local.container_port}${local.health_path}', timeout=4)"]
      interval    = 15
      timeout     = 5
      retries     = 3
      startPeriod = 90
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.api.name
        awslogs-region        = data.aws_region.current.name
        awslogs-stream-prefix = local.container_name
      }
    }
  }])
}

resource "aws_ecs_service" "api" {
  name                   = "${var.name_prefix}-api"
  cluster                = aws_ecs_cluster.this.id
  task_definition        = aws_ecs_task_definition.api.arn
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  desired_count          = var.min_capacity
  enable_execute_command = false
  propagate_tags         = "SERVICE"
  # Time for the bundle download and verification before the load balancer's verdict counts.
  health_check_grace_period_seconds = 90

  # Rolling: new tasks start next to the old ones (200%), the old ones go only when the new are healthy
  # (100%). A deployment whose tasks keep failing, or that sets off an alarm, rolls back by itself to the
  # previous task definition: the previous image and bundle.
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_controller {
    type = "ECS"
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  alarms {
    enable      = true
    rollback    = true
    alarm_names = [aws_cloudwatch_metric_alarm.errors_5xx.alarm_name, aws_cloudwatch_metric_alarm.latency_p99.alarm_name]
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = local.container_name
    container_port   = local.container_port
  }

  lifecycle {
    # Autoscaling owns the running count once the service exists.
    ignore_changes = [desired_count]
  }

  depends_on = [aws_lb_listener.http, aws_lb_listener.https, aws_iam_role_policy.execution]
}
