# The API key, injected into the container as CLIENTML_API_KEY by ECS (task definition `secrets`): it is in
# neither the task definition, the state nor a plan (secret_string_wo is write-only).
resource "aws_secretsmanager_secret" "api_key" {
  name                    = "${var.name_prefix}/api-key"
  description             = "X-API-Key of the ${var.name_prefix} model API"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_days

  # Rotation here means: store a new key (api_key_version + 1) and roll the service; clients must learn the
  # new key at the same time, which a rotation Lambda cannot arrange.
  #checkov:skip=CKV2_AWS_57:the API key is rotated by a deployment (new api_key_version, then a rolling restart) together with its clients
}

resource "aws_secretsmanager_secret_version" "api_key" {
  secret_id                = aws_secretsmanager_secret.api_key.id
  secret_string_wo         = var.api_key
  secret_string_wo_version = var.api_key_version
}
