# The VM-test network: lb1 (192.0.2.11 / 2001:db8::11, priority 150) and
# lb2 (192.0.2.12 / 2001:db8::12, priority 100) share one cluster
# declaration and the VIPs 192.0.2.100 (unicast VRRPv3), 192.0.2.200
# (VRRPv2 with a password) and 2001:db8::100 (multicast VRRPv3 over IPv6)
# on vlan 1; client (192.0.2.1 / 2001:db8::1) reaches them through the VIPs. Each node's
# nginx answers with its own name, so the client can tell who serves.
{ pkgs, self, nftables ? false }:
let
  # TEST-ONLY self-signed certificate for the VIP (see tests/fixtures/secrets/README-nix.md).
  testCert = pkgs.runCommand "nginx-ha-test-cert" { nativeBuildInputs = [ pkgs.openssl ]; } ''
    mkdir -p "$out"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -days 3650 -subj /CN=192.0.2.100 -addext subjectAltName=IP:192.0.2.100 \
      -keyout "$out/key.pem" -out "$out/cert.pem"
  '';

  # The test framework numbers vlan addresses 192.168.1.N by itself;
  # mkForce puts the documentation range in their place.
  base = address: address6: { lib, ... }: {
    virtualisation.vlans = [ 1 ];
    networking.useDHCP = false;
    networking.nftables.enable = nftables;
    networking.firewall.enable = true;
    networking.interfaces.eth1.ipv4.addresses =
      lib.mkForce [{ inherit address; prefixLength = 24; }];
    networking.interfaces.eth1.ipv6.addresses =
      lib.mkForce [{ address = address6; prefixLength = 64; }];
  };

  node = address: address6: priority: { config, ... }: {
    imports = [ (base address address6) self.nixosModules.default ];

    # The shared cluster declaration: identical on both nodes.
    services.nginxHa = {
      enable = true;
      instances.web = {
        interface = "eth1";
        virtualRouterId = 51;
        virtualIps = [ "192.0.2.100/24" ];
        advertInterval = "100ms";
        unicastPeers = [ "192.0.2.11" "192.0.2.12" ];
        preemptDelay = "2s";
      };
      # VRRPv2 with a password, to exercise LoadCredential=.
      instances.legacy = {
        interface = "eth1";
        virtualRouterId = 60;
        version = 2;
        virtualIps = [ "192.0.2.200/24" ];
        # A run-time path; the store only holds the TEST-ONLY file.
        authPasswordFile = "/etc/nginx-ha-test/vrrp-password";
      };
      # IPv6 over multicast (ff02::12): the firewall rule for the group,
      # unsolicited neighbour advertisements, the IPv6 VIP.
      instances.web6 = {
        interface = "eth1";
        virtualRouterId = 51;
        virtualIps = [ "2001:db8::100/64" ];
        advertInterval = "100ms";
      };
      checks.nginx = {
        interval = "200ms";
        timeout = "100ms";
      };
    };
    # Only node.priority (and node.name from the host name) differ.
    services.nginxHa.node.priority = priority;

    environment.etc."nginx-ha-test/vrrp-password" = {
      source = ../tests/fixtures/secrets/vrrp-password.test-only;
      mode = "0400";
    };
    # The key as a run-time file nginx (running as user nginx) can read.
    environment.etc."nginx-ha-test/tls.key" = {
      source = "${testCert}/key.pem";
      mode = "0400";
      user = "nginx";
    };

    services.nginx.virtualHosts.vip = {
      default = true;
      # Listening on the VIP itself, so nginx starts on the backup only with
      # ip_nonlocal_bind, which the module sets for this case.
      listen = [
        { addr = "192.0.2.100"; port = 80; }
        { addr = "192.0.2.100"; port = 443; ssl = true; }
        { addr = "[2001:db8::100]"; port = 80; }
      ];
      sslCertificate = "${testCert}/cert.pem";
      sslCertificateKey = "/etc/nginx-ha-test/tls.key";
      locations."/".return = ''200 "${config.networking.hostName}\n"'';
    };
    networking.firewall.allowedTCPPorts = [ 80 443 ];

    environment.systemPackages = [ pkgs.jq ];
  };
in
{
  nodes = {
    lb1 = node "192.0.2.11" "2001:db8::11" 150;
    lb2 = node "192.0.2.12" "2001:db8::12" 100;
    client = {
      imports = [ (base "192.0.2.1" "2001:db8::1") ];
      security.pki.certificateFiles = [ "${testCert}/cert.pem" ];
      environment.systemPackages = [ pkgs.curl ];
    };
  };

  # Python helpers shared by the test scripts.
  helpers = ''
    import time

    VIP = "192.0.2.100"
    VIP6 = "2001:db8::100"

    def has_vip(m, vip=VIP):
        fam, plen = ("-6", 64) if ":" in vip else ("-4", 24)
        return m.execute(f"ip {fam} -o addr show dev eth1 | grep -q ' {vip}/{plen} '")[0] == 0

    def wait_single_master(m, others, timeout=20, vip=VIP):
        """m holds the VIP and no other node does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if has_vip(m, vip) and not any(has_vip(o, vip) for o in others):
                return
            time.sleep(0.1)
        raise Exception(f"{m.name} is not the single master of {vip} after {timeout}s")

    def served_by(name, scheme="http", timeout=20, vip=VIP):
        host = f"[{vip}]" if ":" in vip else vip
        client.wait_until_succeeds(
            f"curl -sf --max-time 1 {scheme}://{host}/ | grep -qx {name}", timeout=timeout)

    def in_journal(m, pattern):
        m.wait_until_succeeds(f"journalctl -q -u nginx-ha -o cat | grep -Eq '{pattern}'", timeout=10)

    def boot():
        start_all()
        for m in (lb1, lb2):
            m.wait_for_unit("nginx.service")
            m.wait_for_unit("nginx-ha.service")
        client.wait_for_unit("multi-user.target")
        wait_single_master(lb1, [lb2])
        served_by("lb1")
  '';
}
