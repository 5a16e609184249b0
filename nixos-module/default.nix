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
    mapAttrsToList filterAttrs concatStringsSep concatMap unique;

  cfg = config.services.nginxHa;
  nhLib = import ./lib.nix { inherit lib; };
  d = nhLib.daemonDefaults;

  # systemd puts credentials here for the unit; the daemon is given these
  # paths, so the secret files themselves never enter the store or the JSON.
  credentialDir = "/run/credentials/nginx-ha.service";
  credentialName = name: "vrrp-${name}";
  passwordInstances = filterAttrs (_: i: i.authPasswordFile != null) cfg.instances;

  # Keys of services.nginxHa.nginx that configure NixOS, not the daemon.
  nginxIntegrationKeys = [ "enable" "loopbackStatusPage" "openFirewall" "firewallPorts" "nonlocalBind" ];
  nginxDeclaration = removeAttrs cfg.nginx nginxIntegrationKeys;
  hasNginxDeclaration = lib.any (v: v != { } && v != null) (builtins.attrValues nginxDeclaration);

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

  # Where nginx is told to listen: the free-form sites of the declaration
  # and services.nginx's own virtual hosts. Only the listen fields of the
  # latter are read, so no derivation is forced.
  listenText = builtins.toJSON [
    (nginxDeclaration.sites or { })
    (mapAttrsToList (_: v: [ (v.listen or [ ]) (v.listenAddresses or [ ]) ])
      (config.services.nginx.virtualHosts or { }))
  ];
  listensOn = addrs: lib.any (a: lib.hasInfix a listenText) addrs;

  # Ports of the declaration's sites. The nginx part of the declaration is
  # still being designed, so this reads the two shapes it is likely to
  # have: `port = 443;` anywhere, and "ADDRESS:PORT" strings under `listen`.
  sitePorts =
    let
      fromListen = v:
        if builtins.isInt v then [ v ]
        else if builtins.isString v then
          let m = builtins.match "(.*:)?([0-9]{1,5})( .*)?" v; in
          optional (m != null) (lib.toInt (builtins.elemAt m 1))
        else if builtins.isList v then concatMap fromListen v
        else if builtins.isAttrs v then collect v
        else [ ];
      collect = v:
        if builtins.isAttrs v then
          concatLists'
            (mapAttrsToList
              (k: x:
                if k == "port" && builtins.isInt x then [ x ]
                else if k == "listen" then fromListen x
                else collect x)
              v)
        else if builtins.isList v then concatMap collect v
        else [ ];
      concatLists' = builtins.concatLists;
      found = unique (collect (nginxDeclaration.sites or { }));
    in
    if (nginxDeclaration.sites or { }) == { } then [ ]
    else if found == [ ] then [ 80 443 ]
    else found;

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
  options.services.nginxHa = import ./declaration-options.nix
    {
      inherit lib nhLib;
      inherit (config.networking) hostName;
    } // {
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
        The `nginx` part of the declaration (upstreams, sites, status page)
        that `nginx-ha render-nginx` turns into nginx config, plus the NixOS
        integration switches below.

        Its schema is being redesigned (src/config/nginx.rs); until then
        everything except the integration options is free-form JSON, passed
        to the daemon as written and checked by `check-config` at build time.
      '';
      example = literalExpression ''
        {
          upstreams.app.servers = [ "10.0.0.5:8080" "10.0.0.6:8080" ];
          sites.www = {
            serverName = "www.example.org";
            listen = [ "192.0.2.100:443" ];
            tls = { certificate = "/run/secrets/www.crt"; key = "/run/secrets/www.key"; };
            upstream = "app";
          };
        }
      '';
      type = types.submodule ({ config, ... }: {
        freeformType = types.attrsOf (types.nullOr types.anything);
        options = {
          enable = mkOption {
            type = types.bool;
            default = true;
            description = ''
              Run nginx on this node (services.nginx) and feed it the config
              rendered from this declaration at build time. Off: you run
              nginx yourself and point `checks.nginx` at it.
            '';
          };
          upstreams = mkOption {
            type = types.attrsOf types.anything;
            default = { };
            description = "Free-form for now: upstream groups by name, as `render-nginx` reads them.";
          };
          sites = mkOption {
            type = types.attrsOf types.anything;
            default = { };
            description = "Free-form for now: sites (server blocks) by name, as `render-nginx` reads them.";
          };
          loopbackStatusPage = mkOption {
            type = types.bool;
            default = config.enable && (config.statusPage or null) == null;
            defaultText = literalExpression "nginx.enable && nginx.statusPage == null";
            description = ''
              Serve nginx's stub_status on loopback at `checks.nginx.statusUrl`
              (default http://127.0.0.1:8081/nginx_status) for the health
              check. Off when the declaration's own `statusPage` is rendered.
            '';
          };
          openFirewall = mkOption {
            type = types.bool;
            default = true;
            description = "Open `firewallPorts` (TCP) for the sites.";
          };
          firewallPorts = mkOption {
            type = types.listOf types.port;
            default = sitePorts;
            defaultText = literalExpression "the ports the sites listen on ([ 80 443 ] if none is found)";
            description = "TCP ports opened for the sites when `openFirewall` is on.";
          };
          nonlocalBind = mkOption {
            type = types.bool;
            default = listensOn (vip4 ++ vip6);
            defaultText = literalExpression "true if a site or virtual host listens on a virtual IP";
            description = ''
              Set the `ip_nonlocal_bind` sysctls, so nginx can bind a virtual
              IP on a node that is not master (nginx does not start otherwise).
            '';
          };
        };
      });
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
        optionalAttrs (vip4 != [ ]) { "net.ipv4.ip_nonlocal_bind" = mkDefault 1; }
        // optionalAttrs (vip6 != [ ]) { "net.ipv6.ip_nonlocal_bind" = mkDefault 1; }
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
