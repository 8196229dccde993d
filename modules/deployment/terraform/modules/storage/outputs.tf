output "bundle_bucket" {
  description = "Name of the bundle bucket."
  value       = aws_s3_bucket.bundles.bucket
}

output "bundle_bucket_arn" {
  description = "ARN of the bundle bucket."
  value       = local.bucket_arns.bundles
}

output "logs_bucket" {
  description = "Name of the access-log bucket (the load balancer writes under alb/)."
  value       = aws_s3_bucket.logs.bucket
}
