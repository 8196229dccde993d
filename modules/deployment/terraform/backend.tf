# Remote state: an S3 backend configured at init, so that one configuration serves every account and
# environment (staging and production keep separate state files, or separate buckets in separate accounts):
#
#   terraform init \
#     -backend-config="bucket=<state bucket>" \
#     -backend-config="key=clientml/<environment>/terraform.tfstate" \
#     -backend-config="region=us-east-1" \
#     -backend-config="use_lockfile=true" \
#     -backend-config="encrypt=true"
#
# use_lockfile: S3-native locking (a .tflock object next to the state, Terraform >= 1.10), no DynamoDB table.
# The offline checks run `terraform init -backend=false`; the emulator run overrides this block.
terraform {
  backend "s3" {}
}
