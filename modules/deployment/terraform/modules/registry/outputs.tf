output "repository_url" {
  description = "Where `docker push` sends the API image (<account>.dkr.ecr.<region>.amazonaws.com/<name>)."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_arn" {
  description = "ARN of the repository: the only one the task execution role may pull from."
  value       = aws_ecr_repository.this.arn
}
