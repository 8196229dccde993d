# Two roles, each with only what it needs. The execution role is ECS's, before the container starts: pull
# this repository's image, write this log group, read this secret. The task role is the container's: read
# the bundle it serves, nothing else.
locals {
  ecs_tasks_trust = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
      # Only tasks of this account (confused deputy).
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
    }]
  })

  # "champion" may resolve to any version, so the task may read the whole bundle prefix; a pinned version
  # reads its own folder only.
  bundle_keys       = var.bundle == "champion" ? "${var.bundle_prefix}/*" : "${var.bundle_prefix}/${var.bundle}/*"
  bundle_bucket_arn = "arn:${data.aws_partition.current.partition}:s3:::${var.bundle_bucket}"
}

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-api-execution"
  description        = "ECS starts the ${var.name_prefix} API task: image pull, logs, the API key"
  assume_role_policy = local.ecs_tasks_trust
}

resource "aws_iam_role_policy" "execution" {
  name = "start-api-task"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # GetAuthorizationToken has no resource-level permission: AWS accepts only "*" for it.
        Sid      = "EcrLogin"
        Effect   = "Allow"
        Action   = ["ecr:GetAuthorizationToken"]
        Resource = "*"
      },
      {
        Sid      = "PullApiImage"
        Effect   = "Allow"
        Action   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
        Resource = [var.repository_arn]
      },
      {
        Sid      = "WriteApiLogs"
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = ["${aws_cloudwatch_log_group.api.arn}:*"]
      },
      {
        Sid      = "ReadApiKey"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue"]
        Resource = [aws_secretsmanager_secret.api_key.arn]
      },
      {
        # The secret is encrypted with our key; decrypting is allowed only on Secrets Manager's behalf.
        Sid       = "DecryptApiKey"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [var.kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${data.aws_region.current.name}.amazonaws.com" } }
      },
    ]
  })
}

resource "aws_iam_role" "task" {
  name               = "${var.name_prefix}-api-task"
  description        = "The ${var.name_prefix} API container: reads its model bundle"
  assume_role_policy = local.ecs_tasks_trust
}

resource "aws_iam_role_policy" "task" {
  name = "read-bundle"
  role = aws_iam_role.task.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadBundle"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${local.bundle_bucket_arn}/${local.bundle_keys}"]
      },
      {
        # Listing lets the fetch tell a missing file (404) from a refused one (403), within the same keys.
        Sid       = "ListBundle"
        Effect    = "Allow"
        Action    = ["s3:ListBucket"]
        Resource  = [local.bundle_bucket_arn]
        Condition = { StringLike = { "s3:prefix" = [local.bundle_keys] } }
      },
      {
        # Bundle objects are SSE-KMS: decrypting is allowed only on S3's behalf.
        Sid       = "DecryptBundle"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [var.kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = "s3.${data.aws_region.current.name}.amazonaws.com" } }
      },
    ]
  })
}
