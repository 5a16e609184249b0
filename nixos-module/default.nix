# services.nginxHa: VRRP virtual IPs for nginx, from one declaration.
#
# The options under node/instances/checks/notify/nginx ARE the daemon's
# declaration: schema.nix builds them from declaration.schema.json, which
# `nginx-ha schema` prints from the Rust types (CI fails when the committed
# copy is stale). Rules across fields are the daemon's too: the generated
# JSON goes through `nginx-ha check-config` at build time, with messages
# that name the option. What is written here by hand is only the NixOS
# wiring: the JSON file, the hardened unit (hardening.nix, shared with
# contrib/systemd), credentials for VRRPv2 passwords, nginx, sysctls and
# the firewall (iptables or nftables, whichever is active).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkEnableOption mkIf mkMerge mkOption mkDefault types
    literalExpression literalMD optional optionals optionalAttrs mapAttrs
    mapAttrsToList filterAttrs concatStringsSep concatMap;

  cfg = config.services.nginxHa;
  p = "services.nginxHa";
  nhLib = import ./lib.nix { inherit lib; };
  schema = import ./schema.nix { inherit lib; inherit (nhLib) formats; };

  # systemd puts credentials here for the unit; the daemon is given these
  # paths, so the secret files themselves never enter the store or the JSON.
  credentialDir = "/run/credentials/nginx-ha.service";
  credentialName = name: "vrrp-${name}";
  passwordInstances = filterAttrs (_: i: i.authPasswordFile != null) cfg.instances;

  # Options of services.nginxHa.nginx that wire NixOS, not the daemon.
  nginxIntegration = {
    enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run nginx on this node (`services.nginx`) and include the config
        rendered from this declaration in its http block. Off: you run nginx
        yourself (with `nginx-ha render-nginx`, or your own config) and point
        `checks.nginx` at it.
      '';
    };
    loopbackStatusPage = mkOption {
      type = types.bool;
      default = cfg.nginx.enable && !rendersStatusPage;
      defaultText = literalMD "`nginx.enable`, unless the rendered declaration serves its own `statusPage`";
      description = ''
        Serve nginx's stub_status on loopback at `checks.nginx.statusUrl` for
        the health check, as a `services.nginx` virtual host. Off by default
        when the declaration's sites are rendered with their `statusPage`,
        which then serves it.
      '';
    };
    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = "Open `firewallPorts` (TCP) for the sites.";
    };
    firewallPorts = mkOption {
      type = types.listOf types.port;
      default = nhLib.nginx.ports cfg.nginx.sites;
      defaultText = literalMD "the ports of the sites' `listen` entries (80, and 443 with `tls`, when none are given), loopback addresses left out";
      example = [ 80 443 8443 ];
      description = "TCP ports opened for the sites when `openFirewall` is on.";
    };
    nonlocalBind = mkOption {
      type = types.bool;
      default = nonlocal.v4 || nonlocal.v6;
      defaultText = literalMD "`true` if a site's `listen.address` (or a `services.nginx` virtual host's listen address) is a virtual IP";
      description = ''
        Set `net.ipv4.ip_nonlocal_bind` / `net.ipv6.ip_nonlocal_bind` for
        the families of the virtual IPs nginx listens on, so nginx can bind
        them on a node that is not master (it does not start otherwise).
        Forced on without such a listener, it is set for every family the
        instances' virtual IPs use.
      '';
    };
  };
  nginxIntegrationKeys = builtins.attrNames nginxIntegration;

  # The daemon reads an `nginx` part only when there is something to
  # render; the status page alone is served by `loopbackStatusPage`.
  hasNginxDeclaration = cfg.nginx.sites != { } || cfg.nginx.upstreams != { };
  nginxDeclaration = removeAttrs cfg.nginx nginxIntegrationKeys;

  # The options as they were set, before secrets are mapped to credentials:
  # what `missing` and the assertions look at.
  declared = {
    inherit (cfg) node instances checks notify;
  } // optionalAttrs hasNginxDeclaration { nginx = nginxDeclaration; }
  // optionalAttrs (cfg.metrics.enable && cfg.metrics.listen != null) {
    metrics = removeAttrs cfg.metrics metricsNixosOnly;
  }
  // optionalAttrs hasAnycast { anycast = removeAttrs cfg.anycast [ "bgp" ]; };
  hasAnycast = cfg.anycast.prefixes != null;

  # services.nginxHa.metrics options that compose `listen` or wire NixOS.
  metricsNixosOnly = [ "enable" "listenAddress" "port" "openFirewall" ];
  metricsPort = lib.toInt (lib.last (lib.splitString ":" cfg.metrics.listen));
  bracketed = a: if lib.hasInfix ":" a then "[${a}]" else a;

  declaration = nhLib.clean (declared // {
    instances = mapAttrs
      (name: inst: inst // optionalAttrs (inst.authPasswordFile != null) {
        authPasswordFile = "${credentialDir}/${credentialName name}";
      })
      cfg.instances;
  });

  json = builtins.toJSON declaration;

  # Checked like NixOS checks nginx.conf: a declaration the daemon would
  # refuse fails the system build, not the service start, and the message
  # names the option.
  configFile = pkgs.runCommand "nginx-ha.json"
    {
      inherit json;
      passAsFile = [ "json" ];
      nativeBuildInputs = optional cfg.checkConfig cfg.package;
    }
    (''
      cp "$jsonPath" "$out"
    '' + lib.optionalString cfg.checkConfig ''
      nginx-ha check-config --config "$out" --path-prefix ${p}.
    '');

  # The http-level nginx config rendered from the same declaration. Paths of
  # TLS keys appear in it as given: nginx reads them at run time.
  renderedNginx = pkgs.runCommand "nginx-ha-nginx.conf"
    { nativeBuildInputs = [ cfg.package ]; }
    ''
      nginx-ha render-nginx --config ${configFile} --out "$out"
    '';

  statusUrl = nhLib.parseHttpUrl cfg.checks.nginx.statusUrl;
  nginxCheckOn = cfg.checks.nginx.enable;

  vipsOf = pred: concatMap
    (i: builtins.filter pred (map (v: (nhLib.splitPrefix v).addr) (if i.virtualIps == null then [ ] else i.virtualIps)))
    (builtins.attrValues cfg.instances);
  # The anycast service addresses are not on lo until the daemon puts them
  # there (anycast.loopback), so nginx binds them like virtual IPs.
  anycastAddresses = map (a: (nhLib.splitPrefix a).addr) (if hasAnycast then cfg.anycast.prefixes else [ ]);
  vip4 = vipsOf nhLib.isIPv4 ++ builtins.filter nhLib.isIPv4 anycastAddresses;
  vip6 = vipsOf nhLib.isIPv6 ++ builtins.filter nhLib.isIPv6 anycastAddresses;

  # Which virtual IPs nginx binds, so which families need
  # ip_nonlocal_bind: the declaration's sites, as the daemon's
  # listens_on_nonlocal decides, plus the listen addresses of
  # services.nginx's own virtual hosts (only those fields are read, so no
  # derivation is forced).
  vhostAddresses = concatMap
    (v: map (a: lib.removeSuffix "]" (lib.removePrefix "[" a))
      (concatMap (l: optional ((l.addr or null) != null) l.addr) (v.listen or [ ])
        ++ (v.listenAddresses or [ ])))
    (builtins.attrValues (config.services.nginx.virtualHosts or { }));
  rendersStatusPage = hasNginxDeclaration && cfg.nginx.statusPage.enable;

  nonlocal = nhLib.nginx.listensOnNonlocal
    (nhLib.nginx.listenAddresses cfg.nginx.sites ++ vhostAddresses)
    (vip4 ++ vip6);

  # VRRP is IP protocol 112. Multicast instances accept it on their
  # interface for the VRRP group; unicast instances only from their peers.
  vrrpRules = concatMap
    (inst: optional (inst.virtualIps != null && inst.virtualIps != [ ] && inst.interface != null) {
      inherit (inst) interface;
      v4 = nhLib.isIPv4 ((nhLib.splitPrefix (builtins.head inst.virtualIps)).addr);
      peers = inst.unicastPeers;
    })
    (builtins.attrValues cfg.instances);
  comment = "${p}.openFirewall";
  iptablesRules = concatStringsSep "\n" (concatMap
    (r:
      let
        cmd = if r.v4 then "iptables" else "ip6tables";
        group = if r.v4 then "224.0.0.18" else "ff02::12";
      in
      if r.peers == [ ] then
        [ "${cmd} -A nixos-fw -i ${r.interface} -p 112 -d ${group} -m comment --comment ${comment} -j nixos-fw-accept" ]
      else
        map (peer: "${cmd} -A nixos-fw -i ${r.interface} -p 112 -s ${peer} -m comment --comment ${comment} -j nixos-fw-accept") r.peers)
    vrrpRules);
  nftablesRules = concatStringsSep "\n" (map
    (r:
      let
        ipKw = if r.v4 then "ip" else "ip6";
        proto = if r.v4 then "ip protocol 112" else "meta l4proto 112";
        group = if r.v4 then "224.0.0.18" else "ff02::12";
        match = if r.peers == [ ] then "${ipKw} daddr ${group}" else "${ipKw} saddr { ${concatStringsSep ", " r.peers} }";
      in
      ''iifname "${r.interface}" ${match} ${proto} accept comment "${comment}"'')
    vrrpRules);

  # Secrets must stay out of the world-readable store; check-config refuses
  # store paths too, but here the message can say what to do instead.
  secretPaths =
    mapAttrsToList (name: i: { at = "${p}.instances.${name}.authPasswordFile"; path = i.authPasswordFile; }) passwordInstances
    ++ concatMap
      (name:
        let tls = cfg.nginx.sites.${name}.tls; in
        optional (tls != null) { at = "${p}.nginx.sites.${name}.tls.keyFile"; path = tls.keyFile; })
      (builtins.attrNames cfg.nginx.sites);
in
{
  imports = [ ./anycast.nix ];

  options.services.nginxHa = removeAttrs schema.options [ "nginx" "metrics" "anycast" ] // {
    enable = mkEnableOption "nginx-ha, VRRP virtual IPs with built-in nginx health checks";

    package = lib.mkPackageOption pkgs "nginx-ha" { };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Accept VRRP (IP protocol 112) in the NixOS firewall, iptables or
        nftables, whichever `networking.nftables.enable` selects: for
        multicast instances on their interface for the VRRP group, for
        unicast instances only from `unicastPeers`. A firewall that drops
        protocol 112 makes every node master: split brain.
      '';
    };

    checkConfig = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run `nginx-ha check-config` on the generated declaration at build
        time. Turn off only when cross-compiling (the package must run on
        the build machine); the service start checks it as well.
      '';
    };

    nginx = mkOption {
      default = { };
      description = ''
        The `nginx` part of the declaration (upstreams, sites, status page,
        default server) that `nginx-ha render-nginx` turns into nginx config
        at build time, plus the NixOS switches `enable`,
        `loopbackStatusPage`, `openFirewall`, `firewallPorts` and
        `nonlocalBind`, which are not part of the JSON. The part is written
        into the declaration and rendered when it has at least one site or
        upstream.
      '';
      example = literalExpression ''
        {
          upstreams.app.servers = [
            { address = "198.51.100.5:8080"; }
            { address = "198.51.100.6:8080"; }
          ];
          sites.www = {
            serverNames = [ "www.example.org" ];
            listen = [
              { address = "192.0.2.100"; port = 443; ssl = true; }
              { address = "192.0.2.100"; port = 80; }
            ];
            tls = {
              certificateFile = "/run/agenix/www.crt";
              keyFile = config.age.secrets.www-key.path;
            };
            locations = [{ path = "/"; proxyPass = "app"; }];
          };
        }
      '';
      type = types.submodule {
        options = schema.optionsOfObject [ "nginx" ] (schema.sub "nginx") // nginxIntegration;
      };
    };

    metrics = mkOption {
      default = { };
      description = ''
        The Prometheus endpoint (`GET /metrics`), off unless `enable` is
        set. `listen` is the declaration's own field; by default it is
        `listenAddress:port`. `enable`, `listenAddress`, `port` and
        `openFirewall` are NixOS switches, not part of the JSON. Scrape it
        with `services.prometheus.scrapeConfigs` and load the shipped alert
        rules (`contrib/prometheus/alerts.yml`) with
        `services.prometheus.ruleFiles`.
      '';
      example = literalExpression ''{ enable = true; listenAddress = "192.0.2.11"; openFirewall = true; }'';
      type = types.submodule {
        options = schema.optionsOfObject [ "metrics" ] (schema.sub "metrics") // {
          enable = mkEnableOption "the Prometheus endpoint";
          listenAddress = mkOption {
            type = types.str;
            default = "127.0.0.1";
            example = "192.0.2.11";
            description = "The address the endpoint listens on (an IPv4 or IPv6 address, without brackets). Loopback by default: the metrics are not authenticated.";
          };
          port = mkOption {
            type = types.port;
            default = 9586;
            description = "The TCP port the endpoint listens on.";
          };
          openFirewall = mkOption {
            type = types.bool;
            default = false;
            description = "Open the metrics port (TCP) in the firewall, for a Prometheus server on another host. Off by default: the metrics are not authenticated.";
          };
        };
      };
    };

    declaration = mkOption {
      type = types.attrs;
      readOnly = true;
      internal = true;
      default = declaration;
      defaultText = literalMD "the declaration built from the options above";
      description = "The declaration as the daemon reads it (for inspection and tests).";
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = configFile;
      defaultText = literalMD "the generated JSON file, checked by `nginx-ha check-config`";
      description = "The generated declaration file (read-only).";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      # The node's name is node-specific; the host name is the natural one.
      services.nginxHa.node.name = mkDefault config.networking.hostName;
      services.nginxHa.metrics.listen = mkIf cfg.metrics.enable
        (mkDefault "${bracketed cfg.metrics.listenAddress}:${toString cfg.metrics.port}");

      assertions =
        map
          (path: {
            assertion = false;
            message = "${p}.${concatStringsSep "." path} is not set, and has no default: set it (see its description in the option documentation).";
          })
          (schema.missing [ ] schema.schema declared)
        ++ [{
          assertion = cfg.instances != { } || hasAnycast;
          message = "${p}.instances: at least one VRRP instance is needed (or ${p}.anycast).";
        }
          {
            assertion = cfg.metrics.enable || cfg.metrics.listen == null;
            message = "${p}.metrics.listen is set but ${p}.metrics.enable is false: set enable = true to serve the metrics (or remove listen).";
          }]
        ++ map
          (s: {
            assertion = !(lib.hasPrefix builtins.storeDir (toString s.path));
            message = "${s.at}: ${toString s.path} is in the Nix store, which is world-readable; give a run-time path (agenix, sops-nix or a deployed file), as a string, not a Nix path literal.";
          })
          secretPaths;

      environment.systemPackages = [ cfg.package ];

      # A stable path, so `systemctl reload` (SIGHUP) makes the daemon read
      # the new declaration after a switch without dropping the VIP.
      environment.etc."nginx-ha/nginx-ha.json".source = configFile;

      systemd.services.nginx-ha = {
        description = "nginx-ha: VRRP virtual IPs for nginx";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ] ++ optional cfg.nginx.enable "nginx.service";
        after = [ "network-online.target" ] ++ optional cfg.nginx.enable "nginx.service";
        # Changed declaration: reload (keeps the master and its VIPs when the
        # instance is unchanged). Changed unit: restart.
        reloadTriggers = [ configFile ];
        # An HA daemon that gives up after five quick failures leaves the
        # cluster one node short; keep trying every RestartSec.
        startLimitIntervalSec = 0;
        serviceConfig = import ./hardening.nix // {
          ExecStart = "${cfg.package}/bin/nginx-ha run --config /etc/nginx-ha/nginx-ha.json --runtime-dir %t/nginx-ha --state-dir %S/nginx-ha";
          ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
          LoadCredential = mapAttrsToList
            (name: inst: "${credentialName name}:${toString inst.authPasswordFile}")
            passwordInstances;
        };
      };
    }

    # Whichever firewall backend is active: nixpkgs' nftables firewall
    # refuses any extraCommands, the iptables one ignores extraInputRules.
    (mkIf (cfg.openFirewall && !config.networking.nftables.enable) {
      networking.firewall.extraCommands = iptablesRules;
    })
    (mkIf (cfg.openFirewall && config.networking.nftables.enable) {
      networking.firewall.extraInputRules = nftablesRules;
    })

    (mkIf (cfg.metrics.enable && cfg.metrics.openFirewall && cfg.metrics.listen != null) {
      networking.firewall.allowedTCPPorts = [ metricsPort ];
    })

    (mkIf cfg.nginx.enable {
      # mkDefault: a host that sets services.nginx.enable = false itself
      # wins, and the assertion below says what that means.
      services.nginx.enable = mkDefault true;
      services.nginx.appendHttpConfig = mkIf hasNginxDeclaration "include ${renderedNginx};";

      services.nginx.virtualHosts = mkIf (cfg.nginx.loopbackStatusPage && nginxCheckOn) {
        nginx-ha-status = {
          serverName = "nginx-ha-status";
          listen = [{
            addr = if lib.hasInfix ":" statusUrl.host then "[${statusUrl.host}]" else if statusUrl.host == "localhost" then "127.0.0.1" else statusUrl.host;
            inherit (statusUrl) port;
          }];
          locations.${statusUrl.path}.extraConfig = ''
            stub_status;
            access_log off;
            allow 127.0.0.0/8;
            allow ::1;
            deny all;
          '';
        };
      };

      boot.kernel.sysctl = mkIf cfg.nginx.nonlocalBind (
        let
          derived = nonlocal.v4 || nonlocal.v6;
          v4 = if derived then nonlocal.v4 else vip4 != [ ];
          v6 = if derived then nonlocal.v6 else vip6 != [ ];
        in
        optionalAttrs v4 { "net.ipv4.ip_nonlocal_bind" = mkDefault 1; }
        // optionalAttrs v6 { "net.ipv6.ip_nonlocal_bind" = mkDefault 1; }
      );

      networking.firewall.allowedTCPPorts = mkIf cfg.nginx.openFirewall cfg.nginx.firewallPorts;

      assertions = [
        {
          assertion = config.services.nginx.enable;
          message = "${p}.nginx.enable is true (the default), but services.nginx.enable is false: set ${p}.nginx.enable = false when this node runs nginx some other way, and point ${p}.checks.nginx at it.";
        }
      ] ++ optionals (cfg.nginx.loopbackStatusPage && nginxCheckOn) [
        {
          assertion = statusUrl != null && nhLib.isLoopbackHost statusUrl.host;
          message = "${p}.checks.nginx.statusUrl: nginx.loopbackStatusPage serves the status page on loopback only; point statusUrl at 127.0.0.1, [::1] or localhost, or set nginx.loopbackStatusPage = false.";
        }
      ];
    })
  ]);
}
