variable "name" {
  description = "Repository name (<name>-<environment>/api)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", var.name)) && length(var.name) <= 256
    error_message = "name must be a valid ECR repository name (lowercase, digits, '.', '_', '-', '/')."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the images at rest."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "keep_tagged_images" {
  description = "How many tagged images are kept (rollback depth); older ones are expired."
  type        = number

  validation {
    condition     = var.keep_tagged_images >= 2 && floor(var.keep_tagged_images) == var.keep_tagged_images
    error_message = "keep_tagged_images must be an integer >= 2 (the running image and the one a rollback returns to)."
  }
}

variable "untagged_expiry_days" {
  description = "Days after which untagged images are expired."
  type        = number
  default     = 7

  validation {
    condition     = var.untagged_expiry_days >= 1 && floor(var.untagged_expiry_days) == var.untagged_expiry_days
    error_message = "untagged_expiry_days must be a positive integer."
  }
}

variable "force_delete" {
  description = "Whether destroy deletes the repository with its images (staging, emulator); false protects production's."
  type        = bool
}
