# The internet-facing Application Load Balancer. With a domain: an ACM certificate validated through
# Route 53, HTTPS on 443, and 80 answering with a redirect to it. Without one: HTTP on 80 only (the API
# key then crosses the network in clear text: for trials, documented in the README).
locals {
  https          = var.domain_name != null
  listener_ports = local.https ? [80, 443] : [80]
  validation_option = local.https ? one([
    for option in aws_acm_certificate.api[0].domain_validation_options : option if option.domain_name == var.domain_name
  ]) : null
}

resource "aws_lb" "api" {
  name                       = "${var.name_prefix}-api"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  idle_timeout               = 60

  access_logs {
    bucket  = var.logs_bucket
    prefix  = "alb"
    enabled = true
  }

  # A WAF web ACL costs per rule and per request and is an account-wide choice (Firewall Manager); every
  # route but /health/* needs the API key, and the load balancer drops malformed headers.
  #checkov:skip=CKV2_AWS_28:WAF is attached at the account level (Firewall Manager) if the organisation uses it; the API authenticates every data route
}

resource "aws_lb_target_group" "api" {
  name                 = "${var.name_prefix}-api"
  vpc_id               = var.vpc_id
  target_type          = "ip"
  protocol             = "HTTP"
  port                 = local.container_port
  deregistration_delay = 30

  # TLS ends at the load balancer: the hop to the task stays in the private subnets, and only the load
  # balancer's security group may open it. The container serves plain HTTP (no certificate to manage).
  #checkov:skip=CKV_AWS_378:TLS terminates at the ALB; ALB-to-task traffic is inside the VPC, allowed only from the ALB security group

  # Ready means a verified model is loaded: a task whose bundle failed verification never gets traffic.
  health_check {
    path                = local.health_path
    protocol            = "HTTP"
    port                = "traffic-port"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.api.arn
  port              = 80
  protocol          = "HTTP"

  # Plain HTTP serves only when no domain (hence no certificate) is given; with one it redirects.
  #checkov:skip=CKV_AWS_2:HTTP forwards only without a domain (documented trial mode); with domain_name it redirects to HTTPS
  #checkov:skip=CKV_AWS_103:TLS applies to the 443 listener (ELBSecurityPolicy-TLS13-1-2-2021-06); this one is the port-80 listener
  default_action {
    type             = local.https ? "redirect" : "forward"
    target_group_arn = local.https ? null : aws_lb_target_group.api.arn

    dynamic "redirect" {
      for_each = local.https ? [1] : []
      content {
        protocol    = "HTTPS"
        port        = "443"
        status_code = "HTTP_301"
      }
    }
  }
}

resource "aws_lb_listener" "https" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.api.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = aws_acm_certificate_validation.api[0].certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}

resource "aws_acm_certificate" "api" {
  count = local.https ? 1 : 0

  domain_name       = var.domain_name
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

# Keyed by the domain (known when planning), the record's content read from the certificate once it exists.
resource "aws_route53_record" "certificate_validation" {
  for_each = local.https ? toset([var.domain_name]) : toset([])

  zone_id         = var.hosted_zone_id
  name            = local.validation_option.resource_record_name
  type            = local.validation_option.resource_record_type
  records         = [local.validation_option.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "api" {
  count = local.https ? 1 : 0

  certificate_arn         = aws_acm_certificate.api[0].arn
  validation_record_fqdns = [for record in aws_route53_record.certificate_validation : record.fqdn]
}

resource "aws_route53_record" "api" {
  count = local.https ? 1 : 0

  zone_id = var.hosted_zone_id
  name    = var.domain_name
  type    = "A"

  alias {
    name                   = aws_lb.api.dns_name
    zone_id                = aws_lb.api.zone_id
    evaluate_target_health = true
  }
}
