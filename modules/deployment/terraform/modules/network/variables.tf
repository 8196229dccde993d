variable "name_prefix" {
  description = "Prefix of every name in this deployment (<name>-<environment>)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3 to 40 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "cidr_block" {
  description = "CIDR of the new VPC (/16 to /24), cut in 16 equal slices: slices 0-1 are the public subnets, 8-9 the private ones."
  type        = string

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) >= 16 && tonumber(split("/", var.cidr_block)[1]) <= 24
    error_message = "cidr_block must be an IPv4 CIDR from /16 to /24, e.g. 10.40.0.0/16."
  }
}

variable "availability_zones" {
  description = "The two availability zones of the new VPC's subnets (e.g. us-east-1a, us-east-1b)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) == 2 && length(distinct(var.availability_zones)) == 2
    error_message = "availability_zones must name two different zones."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per availability zone (survives a zone's loss) instead of one shared gateway (cheaper)."
  type        = bool
}

variable "vpc_id" {
  description = "An existing VPC to deploy into instead of creating one; null creates a VPC."
  type        = string
  default     = null

  validation {
    condition     = var.vpc_id == null || can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd, or be null."
  }
}

variable "public_subnet_ids" {
  description = "With vpc_id: the existing public subnets (internet gateway route) for the load balancer, in two zones or more."
  type        = list(string)
  default     = []

  validation {
    condition     = var.vpc_id == null ? length(var.public_subnet_ids) == 0 : length(var.public_subnet_ids) >= 2
    error_message = "public_subnet_ids: give two or more subnets with vpc_id, none without it."
  }
}

variable "private_subnet_ids" {
  description = "With vpc_id: the existing private subnets (outbound through NAT) for the tasks, in two zones or more."
  type        = list(string)
  default     = []

  validation {
    condition     = var.vpc_id == null ? length(var.private_subnet_ids) == 0 : length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids: give two or more subnets with vpc_id, none without it."
  }
}

variable "log_group_prefix" {
  description = "Prefix of the deployment's log group names; the flow logs go to <prefix>vpc-flow-logs."
  type        = string

  validation {
    condition     = can(regex("^/[A-Za-z0-9_./-]+/$", var.log_group_prefix))
    error_message = "log_group_prefix must start and end with '/'."
  }
}

variable "log_retention_days" {
  description = "Days the flow logs are kept."
  type        = number

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, 60, 90, ..., 365, ..., 3653)."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the flow logs' log group."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}
