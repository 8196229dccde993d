# The network: a new VPC over two zones with private task subnets, or an existing one used as given.
mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name_prefix        = "clientml-staging"
  cidr_block         = "10.40.0.0/16"
  availability_zones = ["us-east-1a", "us-east-1b"]
  nat_gateway_per_az = false
  log_group_prefix   = "/clientml/staging/"
  log_retention_days = 365
  kms_key_arn        = "arn:aws:kms:us-east-1:123456789012:key/0d7c5f8e-1111-2222-3333-444455556666"
}

run "new_vpc_over_two_zones" {
  command = apply
  module {
    source = "./modules/network"
  }

  assert {
    condition     = length(aws_subnet.public) == 2 && length(aws_subnet.private) == 2 && toset(aws_subnet.private[*].availability_zone) == toset(["us-east-1a", "us-east-1b"])
    error_message = "Two public and two private subnets, one of each per zone."
  }
  assert {
    condition     = alltrue([for s in concat(aws_subnet.public, aws_subnet.private) : !s.map_public_ip_on_launch])
    error_message = "No subnet gives public IPs by default."
  }
  assert {
    condition     = toset(aws_subnet.private[*].cidr_block) == toset(["10.40.128.0/20", "10.40.144.0/20"]) && toset(aws_subnet.public[*].cidr_block) == toset(["10.40.0.0/20", "10.40.16.0/20"])
    error_message = "Subnets are slices 0-1 (public) and 8-9 (private) of the VPC."
  }
  assert {
    condition     = length(aws_nat_gateway.this) == 1 && alltrue([for r in aws_route.private_nat : r.nat_gateway_id == aws_nat_gateway.this[0].id])
    error_message = "By default one NAT gateway serves both private subnets."
  }
  assert {
    condition     = length(aws_route.public_internet) == 1 && aws_route.public_internet[0].gateway_id == aws_internet_gateway.this[0].id
    error_message = "Only the public route table goes to the internet gateway."
  }
  assert {
    condition     = aws_flow_log.this[0].traffic_type == "ALL" && aws_cloudwatch_log_group.flow_logs[0].kms_key_id == var.kms_key_arn
    error_message = "VPC flow logs are on, to an encrypted log group."
  }
  assert {
    condition     = length(aws_default_security_group.this[0].ingress) == 0 && length(aws_default_security_group.this[0].egress) == 0
    error_message = "The default security group allows nothing."
  }
}

run "nat_gateway_per_zone" {
  command = plan
  module {
    source = "./modules/network"
  }
  variables {
    nat_gateway_per_az = true
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 2 && length(aws_eip.nat) == 2
    error_message = "nat_gateway_per_az gives each zone its own NAT gateway."
  }
}

run "existing_vpc" {
  command = plan
  module {
    source = "./modules/network"
  }
  variables {
    vpc_id             = "vpc-0fedcba9876543210"
    public_subnet_ids  = ["subnet-0000000000000000a", "subnet-0000000000000000b"]
    private_subnet_ids = ["subnet-0000000000000000c", "subnet-0000000000000000d"]
  }

  assert {
    condition     = length(aws_vpc.this) == 0 && length(aws_subnet.private) == 0 && length(aws_nat_gateway.this) == 0 && length(aws_flow_log.this) == 0
    error_message = "With vpc_id nothing of the network is created."
  }
  assert {
    condition     = output.vpc_id == "vpc-0fedcba9876543210" && output.private_subnet_ids == tolist(["subnet-0000000000000000c", "subnet-0000000000000000d"])
    error_message = "With vpc_id the given VPC and subnets are used as they are."
  }
}

run "existing_vpc_needs_its_subnets" {
  command = plan
  module {
    source = "./modules/network"
  }
  variables {
    vpc_id             = "vpc-0fedcba9876543210"
    private_subnet_ids = ["subnet-0000000000000000c"]
  }
  expect_failures = [var.public_subnet_ids, var.private_subnet_ids]
}
