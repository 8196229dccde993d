# The clientml model API on AWS: a KMS key, a network, the image repository, the bundle and log buckets,
# and the Fargate service behind a load balancer. The same configuration runs against real AWS and, with
# a CI-only *_override.tf pointing the provider at it, against an emulator.
locals {
  name_prefix      = "${var.name}-${var.environment}"
  log_group_prefix = "/${var.name}/${var.environment}/"
}

module "encryption" {
  source = "./modules/encryption"

  name_prefix             = local.name_prefix
  log_group_prefix        = local.log_group_prefix
  deletion_window_in_days = var.kms_deletion_window_days
}

module "network" {
  source = "./modules/network"

  name_prefix        = local.name_prefix
  cidr_block         = var.vpc_cidr
  availability_zones = var.availability_zones
  nat_gateway_per_az = var.nat_gateway_per_az
  vpc_id             = var.vpc_id
  public_subnet_ids  = var.public_subnet_ids
  private_subnet_ids = var.private_subnet_ids
  log_group_prefix   = local.log_group_prefix
  log_retention_days = var.log_retention_days
  kms_key_arn        = module.encryption.key_arn
}

module "registry" {
  source = "./modules/registry"

  name               = "${local.name_prefix}/api"
  kms_key_arn        = module.encryption.key_arn
  keep_tagged_images = var.keep_images
  force_delete       = var.force_destroy
}

module "storage" {
  source = "./modules/storage"

  name_prefix        = local.name_prefix
  kms_key_arn        = module.encryption.key_arn
  log_retention_days = var.log_retention_days
  force_destroy      = var.force_destroy
}

module "service" {
  source = "./modules/service"

  name_prefix             = local.name_prefix
  vpc_id                  = module.network.vpc_id
  public_subnet_ids       = module.network.public_subnet_ids
  private_subnet_ids      = module.network.private_subnet_ids
  repository_url          = module.registry.repository_url
  repository_arn          = module.registry.repository_arn
  image_tag               = var.image_tag
  bundle_bucket           = module.storage.bundle_bucket
  bundle_prefix           = var.bundle_prefix
  bundle                  = var.bundle
  api_key                 = var.api_key
  api_key_version         = var.api_key_version
  secret_recovery_days    = var.secret_recovery_days
  cpu                     = var.task_cpu
  memory                  = var.task_memory
  workers                 = var.workers
  min_capacity            = var.min_tasks
  max_capacity            = var.max_tasks
  autoscaling_enabled     = !contains(var.omit_resources, "autoscaling")
  cpu_target_percent      = var.cpu_target_percent
  requests_per_target     = var.requests_per_target
  domain_name             = var.domain_name
  hosted_zone_id          = var.hosted_zone_id
  ingress_cidrs           = var.ingress_cidrs
  alb_deletion_protection = var.alb_deletion_protection
  logs_bucket             = module.storage.logs_bucket
  log_group_prefix        = local.log_group_prefix
  log_retention_days      = var.log_retention_days
  kms_key_arn             = module.encryption.key_arn
  alarm_5xx_percent       = var.alarm_5xx_percent
  alarm_p99_seconds       = var.alarm_p99_seconds
  alarm_email             = var.alarm_email
}
