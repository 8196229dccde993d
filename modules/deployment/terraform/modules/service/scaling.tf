# Application Auto Scaling between min_capacity and max_capacity tasks, on whichever asks for more: CPU
# (scoring is CPU-bound) or requests per task (catches load before CPU shows it). Left out where the
# API is missing (autoscaling_enabled = false: an emulator without ListTagsForResource).
resource "aws_appautoscaling_target" "api" {
  count = var.autoscaling_enabled ? 1 : 0

  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.api.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_capacity
  max_capacity       = var.max_capacity
}

locals {
  # Target tracking on two metrics: whichever asks for more tasks wins, the lower one scales in.
  scaling_policies = {
    cpu      = { metric = "ECSServiceAverageCPUUtilization", target = var.cpu_target_percent, label = null }
    requests = { metric = "ALBRequestCountPerTarget", target = var.requests_per_target, label = "${aws_lb.api.arn_suffix}/${aws_lb_target_group.api.arn_suffix}" }
  }
}

resource "aws_appautoscaling_policy" "api" {
  for_each = var.autoscaling_enabled ? local.scaling_policies : {}

  name               = "${var.name_prefix}-api-${each.key}"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.api[0].service_namespace
  resource_id        = aws_appautoscaling_target.api[0].resource_id
  scalable_dimension = aws_appautoscaling_target.api[0].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = each.value.target
    scale_out_cooldown = 60
    scale_in_cooldown  = 300
    predefined_metric_specification {
      predefined_metric_type = each.value.metric
      resource_label         = each.value.label
    }
  }
}
