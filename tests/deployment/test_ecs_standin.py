"""Code tier: where the ECS stand-in's containers reach the emulator on this host."""

from __future__ import annotations

import pytest
from clientml_testkit.ecs_standin import gateway_of


def test_the_reported_gateway_is_taken() -> None:
    assert gateway_of([{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.254"}]) == "172.18.0.254"


def test_a_fresh_engine_without_gateway_gets_the_subnets_first_address() -> None:
    # dockerd 20.10 on an empty data root lists the default bridge's subnet only (seen in CI).
    assert gateway_of([{"Subnet": "172.17.0.0/16"}]) == "172.17.0.1"


def test_the_ipv4_subnet_is_used_beside_an_ipv6_one() -> None:
    assert (
        gateway_of([{"Subnet": "fd00:dead::/64", "Gateway": "fd00:dead::1"}, {"Subnet": "10.1.2.0/24"}]) == "10.1.2.1"
    )


@pytest.mark.parametrize("config", [[], [{"Subnet": "fd00:dead::/64"}], [{"Gateway": "172.17.0.1"}]])
def test_a_bridge_without_ipv4_subnet_is_an_error_naming_it(config: list[dict[str, str]]) -> None:
    with pytest.raises(RuntimeError, match="bridge network has no IPv4 subnet"):
        gateway_of(config)
