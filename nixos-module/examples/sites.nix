# Upstreams and sites for the cluster, rendered into nginx config by
# `nginx-ha render-nginx` at build time. Imported next to cluster.nix on
# every node. The site listens on the virtual IP, so the module sets
# net.ipv4.ip_nonlocal_bind (nginx must start on the backup too) and opens
# TCP 80 and 443.
{ ... }:
{
  services.nginxHa.nginx = {
    upstreams.app = {
      method = "leastConn";
      servers = [
        { address = "10.0.0.5:8080"; weight = 2; }
        { address = "10.0.0.6:8080"; }
        { address = "10.0.0.7:8080"; backup = true; }
      ];
      keepalive = 32;
    };

    upstreams.media = {
      method.hash = { key = "$request_uri"; consistent = true; };
      servers = [
        { address = "10.0.1.5:8080"; }
        { address = "10.0.1.6:8080"; maxFails = 3; failTimeout = "30s"; }
      ];
    };

    sites.www = {
      serverNames = [ "www.example.org" "example.org" ];
      listen = [
        { address = "192.0.2.100"; port = 443; ssl = true; }
        { address = "192.0.2.100"; port = 80; }
      ];
      tls = {
        certificateFile = "/run/agenix/www.crt";
        # A run-time path readable by user nginx; never a store path.
        keyFile = "/run/agenix/www.key";
        hsts = true;
        http2 = true;
      };
      locations = [
        { path = "/"; proxyPass = "app"; }
        { path = "/ws/"; proxyPass = "app"; websockets = true; }
        { path = "/media/"; proxyPass = "http://media"; }
        { path = "/static/"; root = "/srv/www"; }
        { path = "/old"; match = "exact"; return = { status = 301; target = "https://www.example.org/new"; }; }
      ];
      extraDirectives = [
        { name = "client_max_body_size"; args = [ "10m" ]; }
        { name = "add_header"; args = [ "X-Frame-Options" "DENY" ]; }
      ];
    };
  };
}
