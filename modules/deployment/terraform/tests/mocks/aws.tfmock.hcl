# What the mocked AWS provider returns for computed attributes: ARN- and id-shaped values, because the
# configuration parses some (the ARN checks of module inputs, IAM policies built from ARNs) and the
# tests compare them. Account 123456789012, region us-east-1 throughout.
mock_data "aws_caller_identity" {
  defaults = {
    account_id = "123456789012"
    arn        = "arn:aws:iam::123456789012:user/test"
  }
}

mock_data "aws_partition" {
  defaults = {
    partition  = "aws"
    dns_suffix = "amazonaws.com"
  }
}

mock_data "aws_region" {
  defaults = {
    name = "us-east-1"
  }
}

mock_data "aws_elb_service_account" {
  defaults = {
    arn = "arn:aws:iam::127311923021:root"
  }
}

mock_resource "aws_kms_key" {
  defaults = {
    arn    = "arn:aws:kms:us-east-1:123456789012:key/0d7c5f8e-1111-2222-3333-444455556666"
    key_id = "0d7c5f8e-1111-2222-3333-444455556666"
  }
}

mock_resource "aws_vpc" {
  defaults = {
    id       = "vpc-0a1b2c3d4e5f60718"
    arn      = "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-0a1b2c3d4e5f60718"
    owner_id = "123456789012"
  }
}

mock_resource "aws_subnet" {
  defaults = {
    id = "subnet-0a1b2c3d4e5f60718"
  }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = {
    arn = "arn:aws:logs:us-east-1:123456789012:log-group:/clientml/staging/api"
  }
}

mock_resource "aws_iam_role" {
  defaults = {
    arn = "arn:aws:iam::123456789012:role/clientml-staging-role"
  }
}

mock_resource "aws_ecr_repository" {
  defaults = {
    arn            = "arn:aws:ecr:us-east-1:123456789012:repository/clientml-staging/api"
    repository_url = "123456789012.dkr.ecr.us-east-1.amazonaws.com/clientml-staging/api"
  }
}

mock_resource "aws_s3_bucket" {
  defaults = {
    arn = "arn:aws:s3:::clientml-staging-bucket-123456789012"
  }
}

mock_resource "aws_secretsmanager_secret" {
  defaults = {
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:clientml-staging/api-key-AbCdEf"
  }
}

mock_resource "aws_ecs_cluster" {
  defaults = {
    arn = "arn:aws:ecs:us-east-1:123456789012:cluster/clientml-staging"
  }
}

mock_resource "aws_ecs_task_definition" {
  defaults = {
    arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/clientml-staging-api:1"
  }
}

mock_resource "aws_lb" {
  defaults = {
    arn        = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/clientml-staging-api/50dc6c495c0c9188"
    arn_suffix = "app/clientml-staging-api/50dc6c495c0c9188"
    dns_name   = "clientml-staging-api-1234567890.us-east-1.elb.amazonaws.com"
    zone_id    = "Z35SXDOTRQ7X7K"
  }
}

mock_resource "aws_lb_target_group" {
  defaults = {
    arn        = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/clientml-staging-api/6d0ecf831eec9f09"
    arn_suffix = "targetgroup/clientml-staging-api/6d0ecf831eec9f09"
  }
}

mock_resource "aws_lb_listener" {
  defaults = {
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/clientml-staging-api/50dc6c495c0c9188/f2f7dc8efc522ab2"
  }
}

mock_resource "aws_sns_topic" {
  defaults = {
    arn = "arn:aws:sns:us-east-1:123456789012:clientml-staging-api-alarms"
  }
}

mock_resource "aws_acm_certificate" {
  defaults = {
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/9a8b7c6d-1111-2222-3333-444455556666"
    domain_validation_options = [{
      domain_name           = "api.example.com"
      resource_record_name  = "_x1.api.example.com."
      resource_record_type  = "CNAME"
      resource_record_value = "_x2.acm-validations.aws."
    }]
  }
}

mock_resource "aws_acm_certificate_validation" {
  defaults = {
    certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/9a8b7c6d-1111-2222-3333-444455556666"
  }
}

mock_resource "aws_route53_record" {
  defaults = {
    fqdn = "_x1.api.example.com"
  }
}
