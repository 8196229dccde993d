terraform {
  # 1.11: write-only arguments (the API key reaches Secrets Manager without entering the state or a plan).
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.x: the version on disk (/opt/tf-plugins) that every check here ran with; .terraform.lock.hcl pins it.
      version = "~> 5.100"
    }
  }
}
