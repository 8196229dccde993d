# Two security groups: the internet reaches only the load balancer (80, and 443 with a domain); the tasks
# accept only the load balancer, on the container port, and reach AWS APIs over HTTPS.
resource "aws_security_group" "alb" {
  name        = "${var.name_prefix}-alb"
  description = "The API load balancer: HTTP/HTTPS from the allowed ranges, to the tasks only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "alb_from_clients" {
  # 80 always (it redirects to 443 when HTTPS is on), 443 with a domain; one rule per range and port.
  for_each = { for pair in setproduct(var.ingress_cidrs, local.listener_ports) : "${pair[0]}:${pair[1]}" => pair }

  security_group_id = aws_security_group.alb.id
  description       = "Clients of the API on ${each.value[1]}"
  cidr_ipv4         = each.value[0]
  ip_protocol       = "tcp"
  from_port         = each.value[1]
  to_port           = each.value[1]
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Forward requests and health checks to the API tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
}

resource "aws_security_group" "tasks" {
  name        = "${var.name_prefix}-tasks"
  description = "The API tasks: the container port from the load balancer only, HTTPS out"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Requests and health checks from the load balancer"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = local.container_port
  to_port                      = local.container_port
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  # ECR, S3, Secrets Manager and CloudWatch Logs have no fixed addresses: HTTPS to anywhere, through NAT
  # (S3 through its gateway endpoint), and nothing else.
  description = "AWS APIs over HTTPS: image pull, bundle download, secret, logs"
  cidr_ipv4   = "0.0.0.0/0"
  ip_protocol = "tcp"
  from_port   = 443
  to_port     = 443
}
