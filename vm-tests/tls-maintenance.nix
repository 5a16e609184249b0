# HTTPS through the VIP and maintenance mode. Each subtest names its
# network-namespace twin (vm-tests/README.md).
{ pkgs, self }:
let
  common = import ./common.nix { inherit pkgs self; };
in
{
  name = "nginx-ha-tls-maintenance";
  inherit (common) nodes;

  testScript = common.helpers + ''
    boot()

    with subtest("HTTPS through the VIP with the test certificate (twin: tests/lab_tls.rs::https_through_the_vip_follows_the_master)"):
        served_by("lb1", scheme="https")
        # The backup's nginx runs too (ip_nonlocal_bind), ready to serve.
        lb2.succeed("sysctl -n net.ipv4.ip_nonlocal_bind | grep -qx 1")
        lb1.succeed("systemctl kill -s KILL nginx")
        served_by("lb2", scheme="https", timeout=5)
        lb1.wait_for_unit("nginx.service")
        wait_single_master(lb1, [lb2], timeout=30)

    with subtest("maintenance on: the node steps down and stays down across restarts (twin: tests/lab_health.rs::maintenance_moves_the_vip_and_survives_a_restart)"):
        lb1.succeed("nginx-ha maintenance on")
        wait_single_master(lb2, [lb1], timeout=5)
        served_by("lb2")
        lb1.succeed("systemctl restart nginx-ha")
        lb1.sleep(3)
        wait_single_master(lb2, [lb1], timeout=5)
        lb1.succeed("nginx-ha status | grep -qi maintenance")

    with subtest("maintenance off: the node comes back (twin: tests/lab_health.rs::maintenance_moves_the_vip_and_survives_a_restart)"):
        lb1.succeed("nginx-ha maintenance off")
        wait_single_master(lb1, [lb2], timeout=30)
        served_by("lb1", scheme="https")
  '';
}
