variable "name_prefix" {
  description = "Prefix of every name in this deployment (<name>-<environment>); the key's alias is alias/<name_prefix>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3 to 40 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "log_group_prefix" {
  description = "CloudWatch Logs may use the key only for log groups whose name starts with this (e.g. /clientml/staging/)."
  type        = string

  validation {
    condition     = can(regex("^/[A-Za-z0-9_./-]+/$", var.log_group_prefix))
    error_message = "log_group_prefix must start and end with '/' (e.g. /clientml/staging/)."
  }
}

variable "deletion_window_in_days" {
  description = "Days a scheduled key deletion waits (7 to 30): data encrypted with it is unreadable once deleted."
  type        = number

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30."
  }
}
