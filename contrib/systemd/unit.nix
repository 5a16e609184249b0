# Renders contrib/systemd/nginx-ha.service, the unit for systemd
# distributions without NixOS (Debian: /usr/bin/nginx-ha from the .deb or
# `cargo install`). The sandbox is nixos-module/hardening.nix, the same
# attrset the NixOS module uses, so the two cannot drift; regenerate with
# contrib/systemd/render-unit after changing it.
{ bin ? "/usr/bin/nginx-ha"
, config ? "/etc/nginx-ha/nginx-ha.json"
}:
let
  hardening = import ../../nixos-module/hardening.nix;

  # Same conventions as NixOS' systemd unit generator: booleans become
  # yes/no (systemd accepts both spellings), a list becomes one line per
  # element (systemd merges repeated settings).
  render = v: if builtins.isBool v then (if v then "yes" else "no") else toString v;
  linesFor = key: value:
    map (v: "${key}=${render v}") (if builtins.isList value then value else [ value ]);
  hardeningLines = builtins.concatLists
    (map (k: linesFor k hardening.${k}) (builtins.attrNames hardening));
in
builtins.concatStringsSep "\n" ([
  "# GENERATED from nixos-module/hardening.nix by contrib/systemd/render-unit;"
  "# do not edit: change hardening.nix and re-run the script."
  "[Unit]"
  "Description=nginx-ha: VRRP virtual IPs for nginx"
  "Documentation=man:nginx-ha(8)"
  # nginx-ha moves the VIP away while nginx is down, so it starts after
  # nginx and must see the network configured to bind VRRP sockets.
  "Wants=network-online.target nginx.service"
  "After=network-online.target nginx.service"
  # An HA daemon that gives up after five quick failures leaves the
  # cluster one node short; keep trying every RestartSec.
  "StartLimitIntervalSec=0"
  ""
  "[Service]"
  # Refuse a broken declaration before anything changes on the host.
  "ExecStartPre=${bin} check-config --config ${config}"
  "ExecStart=${bin} run --config ${config} --runtime-dir %t/nginx-ha --state-dir %S/nginx-ha"
  # SIGHUP re-reads the declaration and keeps the current master and its
  # VIPs when the instance did not change.
  "ExecReload=/bin/kill -HUP $MAINPID"
  "# VRRPv2 passwords: point authPasswordFile at"
  "# /run/credentials/nginx-ha.service/NAME and add, in a drop-in:"
  "#   LoadCredential=NAME:/etc/nginx-ha/NAME.password"
] ++ hardeningLines ++ [
  ""
  "[Install]"
  "WantedBy=multi-user.target"
  ""
])
