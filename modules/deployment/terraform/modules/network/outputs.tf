output "vpc_id" {
  description = "The VPC the deployment runs in (created, or the one given)."
  value       = local.create ? aws_vpc.this[0].id : var.vpc_id
}

output "public_subnet_ids" {
  description = "Subnets of the load balancer."
  value       = local.create ? aws_subnet.public[*].id : var.public_subnet_ids
}

output "private_subnet_ids" {
  description = "Subnets of the tasks (no public IP, outbound through NAT)."
  value       = local.create ? aws_subnet.private[*].id : var.private_subnet_ids
}
