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

    with subtest("one master at start, VRRP allowed through the firewall (twin: tests/lab_basic.rs::one_master_after_start)"):
        # A firewall dropping protocol 112 would make lb2 master too.
        wait_single_master(lb1, [lb2])
        lb1.succeed("nginx-ha status | grep -qi master")
        lb2.succeed("nginx-ha status | grep -qi backup")
        lb1.succeed("test -e /run/credentials/nginx-ha.service/vrrp-legacy")
        wait_single_master(lb1, [lb2])

    with subtest("kill nginx on the master: the VIP moves (twin: tests/lab_failover.rs::kill_nginx_moves_vip)"):
        lb1.succeed("systemctl kill -s KILL nginx")
        # nginx's unit restarts it after RestartSec (10s); the VIP must move
        # well before that.
        served_by("lb2", timeout=5)
        wait_single_master(lb2, [lb1], timeout=5)

    with subtest("nginx back: failback after rise + preemptDelay (twin: tests/lab_failover.rs::nginx_back_fails_back)"):
        lb1.wait_for_unit("nginx.service")
        wait_single_master(lb1, [lb2], timeout=30)
        served_by("lb1")

    with subtest("stop nginx-ha on the master: fast takeover (twin: tests/lab_failover.rs::stop_daemon_fast_takeover)"):
        t0 = time.monotonic()
        lb1.succeed("systemctl stop nginx-ha")
        served_by("lb2", timeout=5)
        took = time.monotonic() - t0
        # Priority 0 on shutdown: Skew_Time, not Master_Down_Interval.
        assert took < 3, f"takeover took {took:.2f}s"
        lb1.fail("ip -4 -o addr show dev eth1 | grep -q ' 192.0.2.100/24 '")
        lb1.succeed("systemctl start nginx-ha")
        wait_single_master(lb1, [lb2], timeout=30)

    with subtest("partition and heal: one master again (twin: tests/lab_partition.rs::heal_leaves_one_master)"):
        lb1.block()
        # lb2 no longer hears lb1 and takes over; lb1 keeps the VIP on its
        # side of the partition (expected split brain while cut off).
        lb2.wait_until_succeeds("ip -4 -o addr show dev eth1 | grep -q ' 192.0.2.100/24 '", timeout=10)
        served_by("lb2")
        lb1.unblock()
        wait_single_master(lb1, [lb2], timeout=30)
        served_by("lb1")

    with subtest("journald shows the transitions (twin: tests/lab_failover.rs::transitions_logged)"):
        in_journal(lb1, "MASTER")
        in_journal(lb1, "BACKUP|FAULT")
        in_journal(lb2, "MASTER")
        # Structured fields, so a transition can be selected without grep.
        lb2.succeed("journalctl -q -u nginx-ha -o cat INSTANCE=web STATE=MASTER | grep -q .")
  '';
}
