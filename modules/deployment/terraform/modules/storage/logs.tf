# The access-log bucket: the load balancer's access logs (alb/) and the bundle bucket's server access
# logs (s3-access/). Both AWS delivery services write only with SSE-S3, hence no KMS key here.
resource "aws_s3_bucket" "logs" {
  bucket        = local.bucket_names.logs
  force_destroy = var.force_destroy

  #checkov:skip=CKV_AWS_145:ALB access logs and S3 server access logs can be delivered only to SSE-S3 buckets, not SSE-KMS
  #checkov:skip=CKV_AWS_18:this is the access-log bucket; logging it into itself would log its own log writes forever
  #checkov:skip=CKV_AWS_144:access logs are kept for audit in one region; replicating them doubles cost for no recovery need
  #checkov:skip=CKV2_AWS_62:no consumer for object events on log files
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      local.deny_insecure_transport.logs,
      {
        # The region's Elastic Load Balancing account delivers the ALB's access logs.
        Sid       = "LoadBalancerAccessLogs"
        Effect    = "Allow"
        Principal = { AWS = data.aws_elb_service_account.current.arn }
        Action    = "s3:PutObject"
        Resource  = "${local.bucket_arns.logs}/alb/AWSLogs/${data.aws_caller_identity.current.account_id}/*"
      },
      {
        # S3 server access logging delivers the bundle bucket's logs, for this account's buckets only.
        Sid       = "S3ServerAccessLogs"
        Effect    = "Allow"
        Principal = { Service = "logging.s3.amazonaws.com" }
        Action    = "s3:PutObject"
        Resource  = "${local.bucket_arns.logs}/s3-access/*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id }
          ArnLike      = { "aws:SourceArn" = local.bucket_arns.bundles }
        }
      },
    ]
  })

  depends_on = [aws_s3_bucket_public_access_block.this]
}
