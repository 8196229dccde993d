# Buckets of the deployment: the model bundles the tasks read (bundles.tf) and the access logs (logs.tf).
data "aws_caller_identity" "current" {}
data "aws_elb_service_account" "current" {}
data "aws_partition" "current" {}

locals {
  # Names carry the account id: bucket names are global.
  bucket_names = {
    bundles = "${var.name_prefix}-bundles-${data.aws_caller_identity.current.account_id}"
    logs    = "${var.name_prefix}-access-logs-${data.aws_caller_identity.current.account_id}"
  }
  bucket_arns = { for role, name in local.bucket_names : role => "arn:${data.aws_partition.current.partition}:s3:::${name}" }

  # Every bucket refuses plain HTTP (aws:SecureTransport false), whoever asks.
  deny_insecure_transport = {
    for role, arn in local.bucket_arns : role => {
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [arn, "${arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }
  }
}

# What both buckets share: versioning (an overwritten or deleted object can be recovered), no public
# access of any kind, and no ACLs (the bucket owner owns every object).
locals {
  bucket_ids = { bundles = aws_s3_bucket.bundles.id, logs = aws_s3_bucket.logs.id }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.bucket_ids

  bucket = each.value
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.bucket_ids

  bucket                  = each.value
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.bucket_ids

  bucket = each.value
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}
