# The bundle bucket, the access-log bucket and the image repository: encryption, public access
# blocked, TLS only, versioning, immutable scanned images.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name_prefix        = "clientml-staging"
  kms_key_arn        = "arn:aws:kms:us-east-1:123456789012:key/0d7c5f8e-1111-2222-3333-444455556666"
  log_retention_days = 365
  force_destroy      = false
}

run "bundle_bucket" {
  command = apply
  module {
    source = "./modules/storage"
  }

  assert {
    condition = (
      one(aws_s3_bucket_server_side_encryption_configuration.bundles.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "aws:kms" &&
      one(aws_s3_bucket_server_side_encryption_configuration.bundles.rule).apply_server_side_encryption_by_default[0].kms_master_key_id == var.kms_key_arn
    )
    error_message = "Bundles must be encrypted with the deployment's KMS key (SSE-KMS)."
  }
  assert {
    condition = keys(aws_s3_bucket_public_access_block.this) == ["bundles", "logs"] && alltrue([for block in values(aws_s3_bucket_public_access_block.this) :
    block.block_public_acls && block.block_public_policy && block.ignore_public_acls && block.restrict_public_buckets])
    error_message = "Both buckets must block every kind of public access."
  }
  assert {
    condition     = keys(aws_s3_bucket_versioning.this) == ["bundles", "logs"] && alltrue([for v in values(aws_s3_bucket_versioning.this) : v.versioning_configuration[0].status == "Enabled"])
    error_message = "Both buckets must be versioned."
  }
  assert {
    condition = alltrue([for policy in [aws_s3_bucket_policy.bundles.policy, aws_s3_bucket_policy.logs.policy] : anytrue([
      for s in jsondecode(policy).Statement : s.Effect == "Deny" && s.Action == "s3:*" && try(s.Condition.Bool["aws:SecureTransport"], "") == "false"
    ])])
    error_message = "Both buckets must refuse requests that are not over TLS."
  }
  assert {
    condition     = keys(aws_s3_bucket_ownership_controls.this) == ["bundles", "logs"] && alltrue([for o in values(aws_s3_bucket_ownership_controls.this) : one(o.rule).object_ownership == "BucketOwnerEnforced"])
    error_message = "ACLs must be disabled (BucketOwnerEnforced) on both buckets."
  }
  assert {
    condition     = aws_s3_bucket_logging.bundles.target_bucket == aws_s3_bucket.logs.id && aws_s3_bucket.bundles.force_destroy == false
    error_message = "The bundle bucket logs its access to the log bucket, and destroy keeps its objects unless asked."
  }
  assert {
    condition     = one(aws_s3_bucket_server_side_encryption_configuration.logs.rule).apply_server_side_encryption_by_default[0].sse_algorithm == "AES256"
    error_message = "The log bucket uses SSE-S3: the only encryption ALB and S3 log delivery accept."
  }
  assert {
    condition     = output.bundle_bucket == "clientml-staging-bundles-123456789012"
    error_message = "Bucket names carry the account id (globally unique)."
  }
}

run "image_repository" {
  command = apply
  module {
    source = "./modules/registry"
  }
  variables {
    name               = "clientml-staging/api"
    keep_tagged_images = 20
    force_delete       = false
  }

  assert {
    condition     = aws_ecr_repository.this.image_tag_mutability == "IMMUTABLE"
    error_message = "Image tags must be immutable."
  }
  assert {
    condition     = aws_ecr_repository.this.image_scanning_configuration[0].scan_on_push
    error_message = "Images must be scanned on push."
  }
  assert {
    condition     = aws_ecr_repository.this.encryption_configuration[0].encryption_type == "KMS" && aws_ecr_repository.this.encryption_configuration[0].kms_key == var.kms_key_arn
    error_message = "Images must be encrypted with the deployment's KMS key."
  }
  assert {
    condition = (
      [for r in jsondecode(aws_ecr_lifecycle_policy.this.policy).rules : r.selection.countNumber if r.selection.tagStatus == "tagged"] == [20] &&
      [for r in jsondecode(aws_ecr_lifecycle_policy.this.policy).rules : r.selection.countType if r.selection.tagStatus == "untagged"] == ["sinceImagePushed"]
    )
    error_message = "The lifecycle policy keeps the 20 newest tagged images and expires untagged ones."
  }
}

run "repository_keeps_a_rollback_target" {
  command = plan
  module {
    source = "./modules/registry"
  }
  variables {
    name               = "clientml-staging/api"
    keep_tagged_images = 1
    force_delete       = false
  }
  expect_failures = [var.keep_tagged_images]
}
