# services.nginxHa: VRRP virtual IPs for nginx, from one declaration.
#
# The options under node/instances/checks/notify/nginx are the daemon's
# declaration (declaration-options.nix); the rest wires it into NixOS: the
# JSON file (validated by `nginx-ha check-config` at build time), the
# hardened unit (hardening.nix, shared with contrib/systemd), credentials for
# VRRPv2 passwords, nginx, sysctls and the firewall.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkEnableOption mkIf mkMerge mkOption mkDefault types
    literalExpression optional optionals optionalAttrs mapAttrs
    mapAttrsToList filterAttrs concatStringsSep concatMap;

  cfg = config.services.nginxHa;
  declarationOptions = import ./declaration-options.nix {
    inherit lib nhLib;
    inherit (config.networking) hostName;
  };
  nhLib = import ./lib.nix { inherit lib; };
  d = nhLib.daemonDefaults;

  # systemd puts credentials here for the unit; the daemon is given these
  # paths, so the secret files themselves never enter the store or the JSON.
  credentialDir = "/run/credentials/nginx-ha.service";
  credentialName = name: "vrrp-${name}";
  passwordInstances = filterAttrs (_: i: i.authPasswordFile != null) cfg.instances;

  # Keys of services.nginxHa.nginx that configure NixOS, not the daemon.
  nginxIntegrationKeys = [ "enable" "loopbackStatusPage" "openFirewall" "firewallPorts" "nonlocalBind" ];
  # The nginx part as the daemon reads it: unset options, empty lists and
  # an empty statusPage left out; absent altogether when nothing is set.
  nginxDeclaration = nhLib.pruneEmpty (nhLib.clean (removeAttrs cfg.nginx nginxIntegrationKeys));
  hasNginxDeclaration = nginxDeclaration != { };

  declaration = nhLib.clean ({
    node = { inherit (cfg.node) name priority; };
    instances = mapAttrs
      (name: inst: inst // optionalAttrs (inst.authPasswordFile != null) {
        authPasswordFile = "${credentialDir}/${credentialName name}";
      })
      cfg.instances;
    inherit (cfg) checks notify;
  } // optionalAttrs hasNginxDeclaration { nginx = nginxDeclaration; });

  json = builtins.toJSON declaration;

  # Checked like NixOS checks nginx.conf: a declaration the daemon would
  # refuse fails the system build, not the service start.
  configFile = pkgs.runCommand "nginx-ha.json"
    {
      inherit json;
      passAsFile = [ "json" ];
      nativeBuildInputs = optional cfg.checkConfig cfg.package;
    }
    (''
      cp "$jsonPath" "$out"
    '' + lib.optionalString cfg.checkConfig ''
      nginx-ha check-config --config "$out"
    '');

  # The http-level nginx config rendered from the same declaration. Paths of
  # TLS keys appear in it as given: nginx reads them at run time.
  renderedNginx = pkgs.runCommand "nginx-ha-nginx.conf"
    { nativeBuildInputs = [ cfg.package ]; }
    ''
      nginx-ha render-nginx --config ${configFile} --out "$out"
    '';

  statusUrl = nhLib.parseHttpUrl (nhLib.orDefault cfg.checks.nginx.statusUrl d.checks.statusUrl);
  nginxCheckOn = nhLib.orDefault cfg.checks.nginx.enable d.checks.enable;

  vipsOf = pred: concatMap
    (i: builtins.filter pred (map (v: (nhLib.splitPrefix v).addr) i.virtualIps))
    (builtins.attrValues cfg.instances);
  vip4 = vipsOf nhLib.isIPv4;
  vip6 = vipsOf nhLib.isIPv6;

  # Which virtual IPs nginx binds, so which families need
  # ip_nonlocal_bind: the declaration's sites, exactly as the daemon's
  # listens_on_nonlocal (src/config/nginx.rs) decides, plus the listen
  # addresses of services.nginx's own virtual hosts (only those fields are
  # read, so no derivation is forced).
  vhostAddresses = concatMap
    (v: map (a: lib.removeSuffix "]" (lib.removePrefix "[" a))
      (concatMap (l: optional ((l.addr or null) != null) l.addr) (v.listen or [ ])
        ++ (v.listenAddresses or [ ])))
    (builtins.attrValues (config.services.nginx.virtualHosts or { }));
  # The rendered config serves stub_status itself unless told not to.
  rendersStatusPage = hasNginxDeclaration && nhLib.orDefault cfg.nginx.statusPage.enable true;

  nonlocal = nhLib.nginx.listensOnNonlocal
    (nhLib.nginx.listenAddresses cfg.nginx.sites ++ vhostAddresses)
    (vip4 ++ vip6);

  # VRRP is IP protocol 112. Multicast instances accept it on their
  # interface for the VRRP group; unicast instances only from their peers.
  vrrpRules = mapAttrsToList
    (_: inst: {
      inherit (inst) interface;
      v4 = nhLib.isIPv4 ((nhLib.splitPrefix (builtins.head inst.virtualIps)).addr);
      peers = inst.unicastPeers;
    })
    cfg.instances;
  comment = "services.nginxHa.openFirewall";
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
in
{
  options.services.nginxHa = declarationOptions // {
    enable = mkEnableOption "nginx-ha, VRRP virtual IPs with built-in nginx health checks";

    package = lib.mkPackageOption pkgs "nginx-ha" { };

    openFirewall = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Accept VRRP (IP protocol 112) in the NixOS firewall (iptables or
        nftables): for multicast instances on their interface for the VRRP
        group, for unicast instances only from `unicastPeers`. A firewall
        that drops protocol 112 makes every node master: split brain.
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
        default server; see src/config/nginx.rs and the README's field
        reference) that `nginx-ha render-nginx` turns into nginx config at
        build time, plus the NixOS integration switches `enable`,
        `loopbackStatusPage`, `openFirewall`, `firewallPorts` and
        `nonlocalBind`, which are not part of the JSON. When nothing of
        the declaration part is set, the JSON has no `nginx` key and
        nothing is rendered.
      '';
      example = literalExpression ''
        {
          upstreams.app.servers = [
            { address = "10.0.0.5:8080"; }
            { address = "10.0.0.6:8080"; }
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
        options = declarationOptions.nginx // {
          enable = mkOption {
            type = types.bool;
            default = true;
            description = ''
              Run nginx on this node (services.nginx) and include the config
              rendered from this declaration in its http block. Off: you run
              nginx yourself (with `nginx-ha render-nginx`, or your own
              config) and point `checks.nginx` at it.
            '';
          };
          loopbackStatusPage = mkOption {
            type = types.bool;
            default = cfg.nginx.enable && !rendersStatusPage;
            defaultText = literalExpression "nginx.enable, unless the rendered declaration serves its own statusPage";
            description = ''
              Serve nginx's stub_status on loopback at `checks.nginx.statusUrl`
              (default http://127.0.0.1:8081/nginx_status) for the health
              check, as a services.nginx virtual host. Off by default when the
              declaration's nginx part is rendered with its `statusPage`
              (enabled unless `statusPage.enable = false`), which then serves it.
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
            defaultText = literalExpression "the ports of the sites' listen entries (default 80, and 443 with tls), loopback addresses left out";
            example = [ 80 443 8443 ];
            description = "TCP ports opened for the sites when `openFirewall` is on.";
          };
          nonlocalBind = mkOption {
            type = types.bool;
            default = nonlocal.v4 || nonlocal.v6;
            defaultText = literalExpression "true if a site's listen.address (or a services.nginx virtual host's listen address) is a virtual IP";
            description = ''
              Set `net.ipv4.ip_nonlocal_bind` / `net.ipv6.ip_nonlocal_bind`
              for the families of the virtual IPs nginx listens on, so nginx
              can bind them on a node that is not master (it does not start
              otherwise). Forced on without such a listener, it is set for
              every family the instances' virtual IPs use.
            '';
          };
        };
      };
    };

    declaration = mkOption {
      type = types.attrs;
      readOnly = true;
      default = declaration;
      defaultText = literalExpression "the declaration built from the options above";
      description = "The declaration as the daemon reads it (read-only; for inspection and tests).";
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = configFile;
      defaultText = literalExpression "the validated JSON file";
      description = "The generated declaration file, checked by `nginx-ha check-config` (read-only).";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = import ./assertions.nix { inherit lib nhLib; } cfg;

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

    (mkIf cfg.openFirewall {
      networking.firewall.extraCommands = iptablesRules;
      networking.firewall.extraInputRules = nftablesRules;
    })

    (mkIf cfg.nginx.enable {
      services.nginx.enable = true;
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

      assertions = optionals (cfg.nginx.loopbackStatusPage && nginxCheckOn) [
        {
          assertion = statusUrl != null && nhLib.isLoopbackHost statusUrl.host;
          message = "services.nginxHa.checks.nginx.statusUrl: nginx.loopbackStatusPage serves the status page on loopback only; point statusUrl at 127.0.0.1, [::1] or localhost, or set nginx.loopbackStatusPage = false";
        }
      ];
    })
  ]);
}
