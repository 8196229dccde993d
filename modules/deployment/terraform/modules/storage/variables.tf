variable "name_prefix" {
  description = "Prefix of every name in this deployment (<name>-<environment>); bucket names add the account id to be globally unique."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3 to 40 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the bundle bucket's default encryption (SSE-KMS)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted bundle object's old version is kept before it expires."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_days >= 1 && floor(var.noncurrent_version_days) == var.noncurrent_version_days
    error_message = "noncurrent_version_days must be a positive integer."
  }
}

variable "log_retention_days" {
  description = "Days the access logs are kept."
  type        = number

  validation {
    condition     = var.log_retention_days >= 1 && floor(var.log_retention_days) == var.log_retention_days
    error_message = "log_retention_days must be a positive integer."
  }
}

variable "force_destroy" {
  description = "Whether destroy empties and deletes the buckets (staging, emulator); false keeps production's bundles safe."
  type        = bool
}
