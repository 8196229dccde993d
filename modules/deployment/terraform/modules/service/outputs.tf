output "api_url" {
  description = "Base URL of the API: https://<domain_name> with a domain, else http://<load balancer DNS name>."
  value       = local.https ? "https://${var.domain_name}" : "http://${aws_lb.api.dns_name}"
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "ECS service name."
  value       = aws_ecs_service.api.name
}

output "task_definition_arn" {
  description = "The task definition revision this apply made the service run (image tag and bundle are in it)."
  value       = aws_ecs_task_definition.api.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the API containers."
  value       = aws_cloudwatch_log_group.api.name
}

output "api_key_secret_arn" {
  description = "Secrets Manager secret holding the API key (clients read it from here)."
  value       = aws_secretsmanager_secret.api_key.arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the 5xx and latency alarms: subscribe on-call here."
  value       = aws_sns_topic.alarms.arn
}
