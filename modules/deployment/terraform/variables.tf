# Inputs of the deployment. A rule is checked once, in the module that owns it (e.g. task_cpu and
# task_memory in modules/service); Terraform's error then points at the line of main.tf that passes the
# variable named here. Rules that only the root knows are checked below.

# --- naming and place ---------------------------------------------------------------------------------
variable "name" {
  description = "Name of the system; prefixes every resource with <name>-<environment>."
  type        = string
  default     = "clientml"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.name))
    error_message = "name must be 2 to 12 lowercase letters or digits, starting with a letter (load balancer names allow 32 characters in all)."
  }
}

variable "environment" {
  description = "Environment of this state: staging or production (one state, and ideally one AWS account, each)."
  type        = string

  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "region" {
  description = "AWS region of every resource."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

# --- network (rules: modules/network) --------------------------------------------------------------------
variable "availability_zones" {
  description = "The two zones of the created VPC, in region."
  type        = list(string)
  default     = ["us-east-1a", "us-east-1b"]

  validation {
    condition     = alltrue([for zone in var.availability_zones : startswith(zone, var.region)])
    error_message = "availability_zones must be zones of region (e.g. us-east-1a and us-east-1b for us-east-1)."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the VPC created when vpc_id is null."
  type        = string
  default     = "10.40.0.0/16"
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per zone (resilient, about twice the NAT cost) instead of one (cheaper)."
  type        = bool
  default     = false
}

variable "vpc_id" {
  description = "Deploy into this existing VPC instead of creating one (then give both subnet lists)."
  type        = string
  default     = null
}

variable "public_subnet_ids" {
  description = "With vpc_id: existing public subnets (two zones or more) for the load balancer."
  type        = list(string)
  default     = []
}

variable "private_subnet_ids" {
  description = "With vpc_id: existing private subnets with NAT (two zones or more) for the tasks."
  type        = list(string)
  default     = []
}

variable "ingress_cidrs" {
  description = "IPv4 ranges that may reach the load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "domain_name" {
  description = "DNS name of the API in hosted_zone_id: HTTPS (ACM certificate, 443, 80 redirecting). null: HTTP on 80 only."
  type        = string
  default     = null
}

variable "hosted_zone_id" {
  description = "Route 53 hosted zone of domain_name; null exactly when domain_name is."
  type        = string
  default     = null
}

# --- what runs (rules: modules/service) -------------------------------------------------------------------
variable "image_tag" {
  description = "Tag of the API image in the repository (the deploy pushes it first; tags are immutable)."
  type        = string
}

variable "bundle" {
  description = "Model bundle to serve: \"champion\" or a version; the deploy pins a version so that every task and a rollback agree."
  type        = string
  default     = "champion"
}

variable "bundle_prefix" {
  description = "Key prefix of the bundles in the bundle bucket."
  type        = string
  default     = "bundles"
}

variable "api_key" {
  description = "API key (X-API-Key), at least 32 characters; write-only (TF_VAR_api_key): stored in Secrets Manager, never in state."
  type        = string
  sensitive   = true
  ephemeral   = true
}

variable "api_key_version" {
  description = "Raise by one to store a new api_key."
  type        = number
  default     = 1
}

variable "secret_recovery_days" {
  description = "Days a deleted API key secret stays restorable (7-30), 0 to delete at once."
  type        = number
  default     = 7
}

variable "task_cpu" {
  description = "Fargate CPU units per task (512 = 0.5 vCPU)."
  type        = number
  default     = 512
}

variable "task_memory" {
  description = "Memory per task in MiB (a Fargate combination with task_cpu)."
  type        = number
  default     = 1024
}

variable "workers" {
  description = "API worker processes per task."
  type        = number
  default     = 1
}

variable "min_tasks" {
  description = "Fewest tasks (one per zone at 2)."
  type        = number
  default     = 2
}

variable "max_tasks" {
  description = "Most tasks autoscaling may run."
  type        = number
  default     = 20
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation autoscaling holds."
  type        = number
  default     = 60
}

variable "requests_per_target" {
  description = "Requests per task per minute autoscaling holds (3000 = 50 per second)."
  type        = number
  default     = 3000
}

# --- operations -------------------------------------------------------------------------------------------
variable "log_retention_days" {
  description = "Days the API logs, flow logs and access logs are kept (a CloudWatch Logs retention value)."
  type        = number
  default     = 365
}

variable "alarm_5xx_percent" {
  description = "5xx share of requests, in percent, above which the error alarm fires (3 minutes)."
  type        = number
  default     = 1
}

variable "alarm_p99_seconds" {
  description = "p99 response time in seconds above which the latency alarm fires (3 minutes)."
  type        = number
  default     = 1
}

variable "alarm_email" {
  description = "E-mail subscribed to the alarms (confirm the mail AWS sends); null: none."
  type        = string
  default     = null
}

variable "keep_images" {
  description = "Tagged images kept in the repository (how far back a rollback can go)."
  type        = number
  default     = 20
}

variable "kms_deletion_window_days" {
  description = "Days a scheduled deletion of the KMS key waits (7-30)."
  type        = number
  default     = 30
}

variable "alb_deletion_protection" {
  description = "Whether the load balancer refuses deletion; set false (and apply) before destroy."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Whether destroy also deletes the buckets' objects and the repository's images (staging, emulator)."
  type        = bool
  default     = false
}

variable "omit_resources" {
  description = "Resource groups to leave out where the AWS API in use lacks them (an emulator): \"autoscaling\". Empty on AWS."
  type        = set(string)
  default     = []

  validation {
    condition     = alltrue([for group in var.omit_resources : contains(["autoscaling"], group)])
    error_message = "omit_resources may only hold \"autoscaling\"."
  }
}
