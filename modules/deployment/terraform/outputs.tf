output "api_url" {
  description = "Base URL of the API (GET <api_url>/health/ready, GET <api_url>/v1/model with X-API-Key)."
  value       = module.service.api_url
}

output "repository_url" {
  description = "ECR repository to push the API image to (tag it with image_tag)."
  value       = module.registry.repository_url
}

output "bundle_bucket" {
  description = "S3 bucket of the model bundles."
  value       = module.storage.bundle_bucket
}

output "bundle_s3_uri" {
  description = "Where bundles are uploaded: <uri>/<version>/ (every file of the bundle) and <uri>/CHAMPION."
  value       = "s3://${module.storage.bundle_bucket}/${var.bundle_prefix}"
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = module.service.cluster_name
}

output "service_name" {
  description = "ECS service name."
  value       = module.service.service_name
}

output "task_definition_arn" {
  description = "The task definition revision the service runs after this apply."
  value       = module.service.task_definition_arn
}

output "log_group_name" {
  description = "CloudWatch log group of the API containers."
  value       = module.service.log_group_name
}

output "api_key_secret_arn" {
  description = "Secrets Manager secret with the API key."
  value       = module.service.api_key_secret_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.service.alarm_topic_arn
}
