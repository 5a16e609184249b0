# The cluster: imported unchanged by every node (lb1.nix, lb2.nix). Only
# node-specific values (node.priority, and node.name through
# networking.hostName) live in the per-node files.
{ ... }:
{
  services.nginxHa = {
    enable = true;

    instances.web = {
      interface = "eth1";
      virtualRouterId = 51;
      virtualIps = [ "192.0.2.100/24" ];
      advertInterval = "100ms";
      # Every node's own address; each node skips itself. With
      # openFirewall, VRRP is accepted only from these.
      unicastPeers = [ "192.0.2.11" "192.0.2.12" ];
      preemptDelay = "2s";
    };

    # A VRRPv2 instance for an old peer: its password comes from a
    # run-time secret (agenix here), loaded with LoadCredential=.
    instances.legacy = {
      interface = "eth1";
      virtualRouterId = 60;
      version = 2;
      virtualIps = [ "192.0.2.200/24" ];
      authPasswordFile = "/run/agenix/vrrp-password";
      preempt = false;
    };

    checks.nginx = {
      interval = "200ms";
      timeout = "100ms";
    };

    checks.extra.api = {
      type = "http";
      url = "http://127.0.0.1:8080/healthz";
      expectStatus = 200;
      weight = -60;
    };
  };
}
