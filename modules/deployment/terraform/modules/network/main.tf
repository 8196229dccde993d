# A VPC over two availability zones: public subnets for the load balancer and the NAT gateway(s), private
# subnets for the tasks. Given an existing VPC (vpc_id), nothing is created and its subnets are used as is.
locals {
  create = var.vpc_id == null
  # Named zones, not "the first two available": the subnets never move when AWS adds a zone.
  zones = var.availability_zones
  # One NAT gateway is the minimum cost; one per zone survives the loss of a zone (nat_gateway_per_az).
  nat_count = local.create ? (var.nat_gateway_per_az ? 2 : 1) : 0
}

resource "aws_vpc" "this" {
  count = local.create ? 1 : 0

  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = { Name = var.name_prefix }
}

# The default security group of a new VPC allows all traffic between its members: emptied so that
# nothing can use it by accident.
resource "aws_default_security_group" "this" {
  count = local.create ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${var.name_prefix}-default-unused" }
}

resource "aws_internet_gateway" "this" {
  count = local.create ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = { Name = var.name_prefix }
}

resource "aws_subnet" "public" {
  count = local.create ? 2 : 0

  vpc_id            = aws_vpc.this[0].id
  availability_zone = local.zones[count.index]
  cidr_block        = cidrsubnet(var.cidr_block, 4, count.index)
  # Only the load balancer and the NAT gateways live here, and they get their addresses explicitly.
  map_public_ip_on_launch = false
  tags                    = { Name = "${var.name_prefix}-public-${local.zones[count.index]}" }
}

resource "aws_subnet" "private" {
  count = local.create ? 2 : 0

  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = local.zones[count.index]
  cidr_block              = cidrsubnet(var.cidr_block, 4, 8 + count.index)
  map_public_ip_on_launch = false
  tags                    = { Name = "${var.name_prefix}-private-${local.zones[count.index]}" }
}

resource "aws_route_table" "public" {
  count = local.create ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${var.name_prefix}-public" }
}

resource "aws_route" "public_internet" {
  count = local.create ? 1 : 0

  route_table_id         = aws_route_table.public[0].id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this[0].id
}

resource "aws_route_table_association" "public" {
  count = local.create ? 2 : 0

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_eip" "nat" {
  count = local.nat_count

  domain = "vpc"
  tags   = { Name = "${var.name_prefix}-nat-${count.index}" }
}

resource "aws_nat_gateway" "this" {
  count = local.nat_count

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = { Name = "${var.name_prefix}-${local.zones[count.index]}" }

  depends_on = [aws_internet_gateway.this]
}

# One route table per private subnet, each to the NAT gateway of its own zone when there are two.
resource "aws_route_table" "private" {
  count = local.create ? 2 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = { Name = "${var.name_prefix}-private-${local.zones[count.index]}" }
}

resource "aws_route" "private_nat" {
  count = local.create ? 2 : 0

  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[min(count.index, local.nat_count - 1)].id
}

resource "aws_route_table_association" "private" {
  count = local.create ? 2 : 0

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# S3 through a gateway endpoint: free, and the bundle download at every task start does not pay NAT data
# processing.
resource "aws_vpc_endpoint" "s3" {
  count = local.create ? 1 : 0

  vpc_id            = aws_vpc.this[0].id
  service_name      = "com.amazonaws.${data.aws_region.current.name}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id
  tags              = { Name = "${var.name_prefix}-s3" }
}

data "aws_region" "current" {}
