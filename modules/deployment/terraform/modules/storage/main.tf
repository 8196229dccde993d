# Buckets of the deployment: the model bundles the tasks read (bundles.tf) and the access logs (logs.tf).
data "aws_caller_identity" "current" {}
data "aws_elb_service_account" "current" {}

locals {
  # Every bucket refuses plain HTTP (aws:SecureTransport false), whoever asks: keyed by bucket ARN.
  deny_insecure_transport = {
    for arn in [aws_s3_bucket.bundles.arn, aws_s3_bucket.logs.arn] : arn => {
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [arn, "${arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }
  }
}
