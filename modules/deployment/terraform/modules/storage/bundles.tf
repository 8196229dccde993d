# The bundle bucket: <bundle_prefix>/<version>/ holds one model bundle exactly as `clientml train` wrote it
# (manifest.json with every file's SHA-256, the model files), <bundle_prefix>/CHAMPION the version to serve
# when a deployment asks for "champion". Versioned, so an overwritten or deleted object can be recovered.
resource "aws_s3_bucket" "bundles" {
  bucket        = local.bucket_names.bundles
  force_destroy = var.force_destroy

  # Replicating bundles to a second region doubles storage and transfer for artefacts that training
  # re-creates from the warehouse and MLflow holds too; a regional outage is a re-deploy, not a data loss.
  #checkov:skip=CKV_AWS_144:cross-region replication not needed, bundles are reproducible and also kept in MLflow
  # Nothing reacts to uploads: the deploy command names the bundle to serve, no event consumer exists.
  #checkov:skip=CKV2_AWS_62:no consumer for object events; deployments name their bundle explicitly
}

resource "aws_s3_bucket_server_side_encryption_configuration" "bundles" {
  bucket = aws_s3_bucket.bundles.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # One data key per bucket rather than a KMS call per object: cheaper, same protection.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "bundles" {
  bucket        = aws_s3_bucket.bundles.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/${aws_s3_bucket.bundles.id}/"

  # S3 refuses a logging target whose policy does not yet let the logging service write there
  # (InvalidTargetBucketForLogging): the policy first.
  depends_on = [aws_s3_bucket_policy.logs]
}

resource "aws_s3_bucket_lifecycle_configuration" "bundles" {
  bucket = aws_s3_bucket.bundles.id

  rule {
    id     = "old-object-versions"
    status = "Enabled"
    filter {}
    # Current objects stay (every published bundle); only replaced or deleted copies expire.
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_policy" "bundles" {
  bucket = aws_s3_bucket.bundles.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [local.deny_insecure_transport.bundles]
  })

  depends_on = [aws_s3_bucket_public_access_block.this]
}
