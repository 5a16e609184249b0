# Failover scenarios on two nginx-ha nodes and a client. Each subtest names
# its network-namespace twin, which runs in CI (vm-tests/README.md).
{ pkgs, self, nftables ? false }:
let
  common = import ./common.nix { inherit pkgs self nftables; };
in
{
  name = "nginx-ha-failover${if nftables then "-nftables" else ""}";
  inherit (common) nodes;

  testScript = common.helpers + ''
    boot()

    with subtest("one master at start, VRRP allowed through the firewall (twin: tests/lab_vrrp.rs::a_two_nodes_elect_one_master_and_serve)"):
        # A firewall dropping protocol 112 would make lb2 master too.
        wait_single_master(lb1, [lb2])
        lb1.succeed("nginx-ha status | grep -qi master")
        lb2.succeed("nginx-ha status | grep -qi backup")
        lb1.succeed("test -e /run/credentials/nginx-ha.service/vrrp-legacy")
        wait_single_master(lb1, [lb2])

    with subtest("IPv6 over multicast: one master, served through the IPv6 VIP (twin: tests/lab_vrrp.rs::f_ipv6_vip_elects_serves_and_fails_over)"):
        # ff02::12 passes the firewall (iptables or nftables), or both
        # nodes would hold the IPv6 VIP.
        wait_single_master(lb1, [lb2], vip=VIP6)
        served_by("lb1", vip=VIP6)

    with subtest("kill nginx on the master: the VIP moves (twin: tests/lab_health.rs::kill_nginx_on_master_backup_serves_within_skew_time)"):
        lb1.succeed("systemctl kill -s KILL nginx")
        # nginx's unit restarts it after RestartSec (10s); the VIP must move
        # well before that.
        served_by("lb2", timeout=5)
        wait_single_master(lb2, [lb1], timeout=5)
        # Every instance tracks nginx: the IPv6 VIP moves too.
        wait_single_master(lb2, [lb1], timeout=5, vip=VIP6)
        served_by("lb2", timeout=5, vip=VIP6)

    with subtest("nginx back: failback after rise + preemptDelay (twin: tests/lab_health.rs::nginx_back_returns_to_backup_and_preempts_back)"):
        lb1.wait_for_unit("nginx.service")
        wait_single_master(lb1, [lb2], timeout=30)
        served_by("lb1")

    with subtest("stop nginx-ha on the master: fast takeover (twin: tests/lab_vrrp.rs::b_sigterm_on_master_backup_serves_within_skew_time)"):
        t0 = time.monotonic()
        lb1.succeed("systemctl stop nginx-ha")
        served_by("lb2", timeout=5)
        took = time.monotonic() - t0
        # Priority 0 on shutdown: Skew_Time, not Master_Down_Interval.
        assert took < 3, f"takeover took {took:.2f}s"
        lb1.fail("ip -4 -o addr show dev eth1 | grep -q ' 192.0.2.100/24 '")
        lb1.succeed("systemctl start nginx-ha")
        wait_single_master(lb1, [lb2], timeout=30)

    with subtest("partition and heal: one master again (twin: tests/lab_vrrp.rs::e_blocked_vrrp_gives_two_masters_and_healing_converges_with_announcements)"):
        lb1.block()
        # lb2 no longer hears lb1 and takes over; lb1 keeps the VIP on its
        # side of the partition (expected split brain while cut off).
        lb2.wait_until_succeeds("ip -4 -o addr show dev eth1 | grep -q ' 192.0.2.100/24 '", timeout=10)
        served_by("lb2")
        lb1.unblock()
        wait_single_master(lb1, [lb2], timeout=30)
        served_by("lb1")

    with subtest("journald shows the transitions (twin: tests/nspawn.rs::operating_promises_from_inside)"):
        in_journal(lb1, "MASTER")
        in_journal(lb1, "BACKUP|FAULT")
        in_journal(lb2, "MASTER")
        # Structured fields, so a transition can be selected without grep.
        lb2.succeed("journalctl -q -u nginx-ha -o cat INSTANCE=web STATE=MASTER | grep -q .")
  '';
}
