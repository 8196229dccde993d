variable "name_prefix" {
  description = "Prefix of every name in this deployment (<name>-<environment>)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,22}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3 to 24 lowercase letters, digits or '-' (load balancer and target group names allow 32 characters)."
  }
}

variable "vpc_id" {
  description = "VPC of the load balancer, the target group and the security groups."
  type        = string

  validation {
    condition     = can(regex("^vpc-", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "public_subnet_ids" {
  description = "Subnets of the internet-facing load balancer (two zones or more)."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "public_subnet_ids: an Application Load Balancer needs subnets in two zones or more."
  }
}

variable "private_subnet_ids" {
  description = "Subnets of the tasks: no public IP, outbound through NAT (two zones or more)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids: give subnets in two zones or more so that a zone's loss leaves tasks running."
  }
}

variable "repository_url" {
  description = "ECR repository of the API image (without tag)."
  type        = string

  validation {
    condition     = can(regex("^[^:@]+$", var.repository_url))
    error_message = "repository_url must have no tag or digest (image_tag gives the tag)."
  }
}

variable "repository_arn" {
  description = "ARN of that repository: the only one the execution role may pull from."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecr:", var.repository_arn))
    error_message = "repository_arn must be an ECR repository ARN."
  }
}

variable "image_tag" {
  description = "Tag of the API image to run (immutable tags: the git commit is a good one)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a Docker tag: letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-'."
  }
}

variable "bundle_bucket" {
  description = "Bucket the task fetches its bundle from."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bundle_bucket))
    error_message = "bundle_bucket must be an S3 bucket name."
  }
}

variable "bundle_prefix" {
  description = "Key prefix of the bundles in that bucket (<prefix>/<version>/..., <prefix>/CHAMPION)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", var.bundle_prefix))
    error_message = "bundle_prefix must be path segments of letters, digits, '_' or '-', without leading or trailing '/'."
  }
}

variable "bundle" {
  description = "The bundle the tasks serve: \"champion\" (whatever <prefix>/CHAMPION names when a task starts) or a version (<UTC time>Z-<12 hex>)."
  type        = string

  validation {
    condition     = var.bundle == "champion" || can(regex("^[0-9]{8}T[0-9]{6}\\.[0-9]{6}Z-[0-9a-f]{12}$", var.bundle))
    error_message = "bundle must be \"champion\" or a bundle version like 20250101T120000.123456Z-3f2a9c1b7d4e."
  }
}

variable "api_key" {
  description = "The API key clients send as X-API-Key. Write-only: it reaches Secrets Manager, never the state or a plan."
  type        = string
  sensitive   = true
  ephemeral   = true

  validation {
    condition     = length(var.api_key) >= 32
    error_message = "api_key must be at least 32 characters (python3 -c 'import secrets; print(secrets.token_urlsafe(32))')."
  }
}

variable "api_key_version" {
  description = "Raise it to store a new api_key (write-only values are not compared, so only a new version rewrites the secret)."
  type        = number

  validation {
    condition     = var.api_key_version >= 1 && floor(var.api_key_version) == var.api_key_version
    error_message = "api_key_version must be a positive integer."
  }
}

variable "secret_recovery_days" {
  description = "Days a deleted API key secret can be restored (7 to 30), or 0 to delete at once (emulator, throwaway stacks)."
  type        = number

  validation {
    condition     = var.secret_recovery_days == 0 || (var.secret_recovery_days >= 7 && var.secret_recovery_days <= 30)
    error_message = "secret_recovery_days must be 0 or between 7 and 30."
  }
}

variable "cpu" {
  description = "Fargate CPU units of one task (256 = 0.25 vCPU)."
  type        = number

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096], var.cpu)
    error_message = "cpu must be 256, 512, 1024, 2048 or 4096."
  }
}

variable "memory" {
  description = "Memory of one task in MiB; must be a combination Fargate offers for cpu (e.g. 512 CPU: 1024 to 4096)."
  type        = number

  validation {
    condition = (
      (var.cpu == 256 && contains([512, 1024, 2048], var.memory)) ||
      (var.cpu == 512 && var.memory >= 1024 && var.memory <= 4096 && var.memory % 1024 == 0) ||
      (var.cpu == 1024 && var.memory >= 2048 && var.memory <= 8192 && var.memory % 1024 == 0) ||
      (var.cpu == 2048 && var.memory >= 4096 && var.memory <= 16384 && var.memory % 1024 == 0) ||
      (var.cpu == 4096 && var.memory >= 8192 && var.memory <= 30720 && var.memory % 1024 == 0)
    )
    error_message = "memory is not a Fargate combination for this cpu (256: 512/1024/2048; 512: 1024-4096; 1024: 2048-8192; 2048: 4096-16384; 4096: 8192-30720; in 1024 steps)."
  }
}

variable "workers" {
  description = "API worker processes per task (CLIENTML_WORKERS); about 250 MiB each."
  type        = number

  validation {
    condition     = var.workers >= 1 && var.workers <= 8 && floor(var.workers) == var.workers
    error_message = "workers must be an integer from 1 to 8."
  }
}

variable "min_capacity" {
  description = "Fewest running tasks (also the desired count at creation); 2 keeps one per zone."
  type        = number

  validation {
    condition     = var.min_capacity >= 1 && floor(var.min_capacity) == var.min_capacity
    error_message = "min_capacity must be a positive integer."
  }
}

variable "max_capacity" {
  description = "Most running tasks autoscaling may start."
  type        = number

  validation {
    condition     = var.max_capacity >= var.min_capacity && floor(var.max_capacity) == var.max_capacity
    error_message = "max_capacity must be an integer >= min_capacity."
  }
}

variable "autoscaling_enabled" {
  description = "Whether the Application Auto Scaling target and its two policies are created (false only where the API lacks them, e.g. an emulator)."
  type        = bool
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation of the service that autoscaling holds."
  type        = number

  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be between 10 and 90."
  }
}

variable "requests_per_target" {
  description = "Requests per task per minute (ALBRequestCountPerTarget) that autoscaling holds."
  type        = number

  validation {
    condition     = var.requests_per_target >= 1
    error_message = "requests_per_target must be at least 1."
  }
}

variable "domain_name" {
  description = "A DNS name for the API (api.example.com) in hosted_zone_id: HTTPS on 443 with an ACM certificate, 80 redirecting. null: HTTP on 80 only."
  type        = string
  default     = null

  validation {
    condition     = var.domain_name == null || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be a lowercase DNS name such as api.example.com, or null."
  }
}

variable "hosted_zone_id" {
  description = "Route 53 public hosted zone of domain_name (certificate validation and the alias record); null exactly when domain_name is."
  type        = string
  default     = null

  validation {
    condition     = (var.hosted_zone_id == null) == (var.domain_name == null)
    error_message = "hosted_zone_id and domain_name go together: give both (HTTPS) or neither (HTTP only)."
  }
}

variable "ingress_cidrs" {
  description = "IPv4 ranges allowed to reach the load balancer."
  type        = list(string)

  validation {
    condition     = length(var.ingress_cidrs) > 0 && alltrue([for c in var.ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "ingress_cidrs must be one or more IPv4 CIDRs."
  }
}

variable "alb_deletion_protection" {
  description = "Whether the load balancer refuses deletion (production); destroy needs it false first."
  type        = bool
}

variable "logs_bucket" {
  description = "Bucket that receives the load balancer's access logs (under alb/)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.logs_bucket))
    error_message = "logs_bucket must be an S3 bucket name."
  }
}

variable "log_group_prefix" {
  description = "Prefix of the deployment's log groups; the API logs to <prefix>api."
  type        = string

  validation {
    condition     = can(regex("^/[A-Za-z0-9_./-]+/$", var.log_group_prefix))
    error_message = "log_group_prefix must start and end with '/'."
  }
}

variable "log_retention_days" {
  description = "Days the API's logs are kept."
  type        = number

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch Logs retention value (1, 3, 5, 7, 14, 30, 60, 90, ..., 365, ..., 3653)."
  }
}

variable "kms_key_arn" {
  description = "The deployment's KMS key: logs, the secret, the alarm topic, and the bundle bucket's objects the task decrypts."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "alarm_5xx_percent" {
  description = "Alarm when 5xx responses (target and load balancer) exceed this share of requests, in percent, for 3 minutes."
  type        = number

  validation {
    condition     = var.alarm_5xx_percent > 0 && var.alarm_5xx_percent <= 100
    error_message = "alarm_5xx_percent must be in (0, 100]."
  }
}

variable "alarm_p99_seconds" {
  description = "Alarm when the 99th percentile of TargetResponseTime exceeds this many seconds for 3 minutes."
  type        = number

  validation {
    condition     = var.alarm_p99_seconds > 0
    error_message = "alarm_p99_seconds must be positive."
  }
}

variable "alarm_email" {
  description = "An address subscribed to the alarm topic (it must confirm the subscription); null: subscribe later."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be an e-mail address, or null."
  }
}
