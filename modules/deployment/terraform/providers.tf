# The provider as production uses it: credentials and endpoints come from the environment (OIDC in CI, a
# profile on a laptop). An emulator run points it elsewhere with a CI-only *_override.tf, never here.
provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = var.name
      Environment = var.environment
      ManagedBy   = "terraform"
    }
  }
}
