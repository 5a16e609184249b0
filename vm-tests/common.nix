# The VM-test network: lb1 (192.0.2.11, priority 150) and lb2 (192.0.2.12,
# priority 100) share one cluster declaration and the VIP 192.0.2.100 on
# vlan 1; client (192.0.2.1) reaches them through the VIP. Each node's
# nginx answers with its own name, so the client can tell who serves.
{ pkgs, self, nftables ? false }:
let
  # TEST-ONLY self-signed certificate for the VIP (see secrets/README-nix.md).
  testCert = pkgs.runCommand "nginx-ha-test-cert" { nativeBuildInputs = [ pkgs.openssl ]; } ''
    mkdir -p "$out"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -days 3650 -subj /CN=192.0.2.100 -addext subjectAltName=IP:192.0.2.100 \
      -keyout "$out/key.pem" -out "$out/cert.pem"
  '';

  # The test framework numbers vlan addresses 192.168.1.N by itself;
  # mkForce puts the documentation range in their place.
  base = address: { lib, ... }: {
    virtualisation.vlans = [ 1 ];
    networking.useDHCP = false;
    networking.nftables.enable = nftables;
    networking.firewall.enable = true;
    networking.interfaces.eth1.ipv4.addresses =
      lib.mkForce [{ inherit address; prefixLength = 24; }];
  };

  node = address: priority: { config, ... }: {
    imports = [ (base address) self.nixosModules.default ];

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
      checks.nginx = {
        interval = "200ms";
        timeout = "100ms";
      };
    };
    # Only node.priority (and node.name from the host name) differ.
    services.nginxHa.node.priority = priority;

    environment.etc."nginx-ha-test/vrrp-password" = {
      source = ../secrets/vrrp-password.test-only;
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
    lb1 = node "192.0.2.11" 150;
    lb2 = node "192.0.2.12" 100;
    client = {
      imports = [ (base "192.0.2.1") ];
      security.pki.certificateFiles = [ "${testCert}/cert.pem" ];
      environment.systemPackages = [ pkgs.curl ];
    };
  };

  # Python helpers shared by the test scripts.
  helpers = ''
    import time

    VIP = "192.0.2.100"

    def has_vip(m):
        return m.execute(f"ip -4 -o addr show dev eth1 | grep -q ' {VIP}/24 '")[0] == 0

    def wait_single_master(m, others, timeout=20):
        """m holds the VIP and no other node does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if has_vip(m) and not any(has_vip(o) for o in others):
                return
            time.sleep(0.1)
        raise Exception(f"{m.name} is not the single master after {timeout}s")

    def served_by(name, scheme="http", timeout=20):
        client.wait_until_succeeds(
            f"curl -sf --max-time 1 {scheme}://{VIP}/ | grep -qx {name}", timeout=timeout)

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
