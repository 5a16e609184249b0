# Tests of services.nginxHa, evaluated (never built) by .ci/nix-checks with
# a real nixpkgs:
#
#   systems      every example node × {iptables, nftables}, real NixOS
#   wiring       facts about those systems (firewall rules per backend,
#                credentials, sysctls, ports, assertions), each true/false
#   unitText     the nginx-ha.service NixOS generates, to hold against
#                contrib/systemd/nginx-ha.service
#   variants     one declaration per schema leaf set to its example, per
#                base configuration that has the leaf (check-config must
#                accept at least one per leaf)
#   coverage     option paths vs schema paths, both ways
#   outOfRange   integer leaves set one past their range: must not evaluate
#   docs         the options documentation, as nixosOptionsDoc renders it
{ nixpkgs ? <nixpkgs> }:
let
  lib = import (nixpkgs + "/lib");
  tlib = import ./lib.nix { inherit nixpkgs; };
  nhLib = import ../lib.nix { inherit lib; };
  schema = import ../schema.nix { inherit lib; inherit (nhLib) formats; };

  # ---- real NixOS systems --------------------------------------------------
  examples = {
    lb1 = [ ../examples/lb1.nix ];
    lb2 = [ ../examples/lb2.nix ];
    lb1-sites = [ ../examples/lb1.nix ../examples/sites.nix ];
    ipv6 = [ ../examples/ipv6.nix ];
  };
  firewalls = { iptables = false; nftables = true; };
  systems = lib.listToAttrs (lib.concatLists (lib.mapAttrsToList
    (ex: modules: lib.mapAttrsToList
      (fw: nftables: lib.nameValuePair "${ex}-${fw}" (tlib.evalSystem { inherit modules nftables; }))
      firewalls)
    examples));

  cfgOf = name: systems.${name}.config;
  has = lib.hasInfix;
  fwRules = name: (cfgOf name).networking.firewall;
  nftInput = name: (cfgOf name).networking.nftables.tables.nixos-fw.content or "";
  failedAssertions = modules: nftables:
    map (a: a.message) (builtins.filter (a: !a.assertion)
      (tlib.evalSystem { inherit modules nftables; }).config.assertions);
  assertsWith = modules: text: lib.any (m: has text m) (failedAssertions modules false);

  wiring = {
    # nixpkgs' nftables firewall asserts extraCommands == "": nothing of
    # ours may go there, and the rules must reach the nftables ruleset.
    nftablesNoExtraCommands = lib.all (n: !(has "nginxHa" (fwRules "${n}-nftables").extraCommands)) (builtins.attrNames examples);
    nftablesUnicastRule = has ''iifname "eth1" ip saddr { 192.0.2.11, 192.0.2.12 } ip protocol 112 accept'' (nftInput "lb1-nftables");
    nftablesMulticastRule = has ''iifname "eth1" ip daddr 224.0.0.18 ip protocol 112 accept'' (nftInput "lb1-nftables");
    nftablesIPv6Rule = has ''iifname "eth1" ip6 daddr ff02::12 meta l4proto 112 accept'' (nftInput "ipv6-nftables");
    iptablesUnicastRule = has "iptables -A nixos-fw -i eth1 -p 112 -s 192.0.2.11" (fwRules "lb1-iptables").extraCommands;
    iptablesIPv6Rule = has "ip6tables -A nixos-fw -i eth1 -p 112 -d ff02::12" (fwRules "ipv6-iptables").extraCommands;
    iptablesNoInputRules = !(has "nginxHa" (fwRules "lb1-iptables").extraInputRules);
    noFailedAssertions = lib.all (n: builtins.all (a: a.assertion) (cfgOf n).assertions) (builtins.attrNames systems);
    credential = builtins.elem "vrrp-legacy:/run/agenix/vrrp-password"
      (cfgOf "lb1-iptables").systemd.services.nginx-ha.serviceConfig.LoadCredential;
    passwordNotInJson = !(has "agenix" (builtins.toJSON (cfgOf "lb1-iptables").services.nginxHa.declaration));
    nodeNameFromHostName = (cfgOf "lb2-nftables").services.nginxHa.declaration.node.name == "lb2";
    nonlocalBindForSites = (cfgOf "lb1-sites-nftables").boot.kernel.sysctl."net.ipv4.ip_nonlocal_bind" or null == 1;
    noNonlocalBindWithoutSites = !((cfgOf "lb1-nftables").boot.kernel.sysctl ? "net.ipv4.ip_nonlocal_bind");
    sitePortsOpen = lib.all (port: builtins.elem port (fwRules "lb1-sites-nftables").allowedTCPPorts) [ 80 443 ];
    renderedIncluded = has "include /nix/store/" (cfgOf "lb1-sites-iptables").services.nginx.appendHttpConfig;
    statusPageFromRender = !((cfgOf "lb1-sites-iptables").services.nginx.virtualHosts ? nginx-ha-status);
    statusPageLoopback = (cfgOf "lb1-iptables").services.nginx.virtualHosts ? nginx-ha-status;
    ipv6StatusPage = (builtins.head (cfgOf "ipv6-nftables").services.nginx.virtualHosts.nginx-ha-status.listen).addr == "[::1]";
    oldUnicastReachesDaemon =
      (tlib.evalSystem {
        modules = [ ../examples/lb1.nix { services.nginxHa.instances.web.v3Checksum = "oldUnicast"; } ];
      }).config.services.nginxHa.declaration.instances.web.v3Checksum == "oldUnicast";
    # A user's own services.nginx.enable = false wins over the module's
    # default and is explained.
    nginxOffExplained = assertsWith [ ../examples/lb1.nix { services.nginx.enable = false; } ]
      "services.nginxHa.nginx.enable is true";
    priorityMissingExplained = assertsWith [ ../examples/cluster.nix { networking.hostName = "lb9"; } ]
      "services.nginxHa.node.priority is not set";
    requiredInMapExplained = assertsWith [ ../examples/lb1.nix { services.nginxHa.instances.x.interface = "eth1"; } ]
      "services.nginxHa.instances.x.virtualRouterId is not set";
    noMetricsByDefault = !((cfgOf "lb1-iptables").services.nginxHa.declaration ? metrics);
    metricsReachDaemon =
      let c = (tlib.evalSystem { modules = [ ../examples/lb1.nix { services.nginxHa.metrics = { enable = true; listenAddress = "192.0.2.11"; port = 9100; openFirewall = true; }; } ]; }).config;
      in c.services.nginxHa.declaration.metrics == { listen = "192.0.2.11:9100"; }
        && builtins.elem 9100 c.networking.firewall.allowedTCPPorts;
    metricsLoopbackByDefault =
      let c = (tlib.evalSystem { modules = [ ../examples/lb1.nix { services.nginxHa.metrics.enable = true; } ]; }).config;
      in c.services.nginxHa.declaration.metrics == { listen = "127.0.0.1:9586"; }
        && !(builtins.elem 9586 c.networking.firewall.allowedTCPPorts);
    metricsIpv6Bracketed =
      let c = (tlib.evalSystem { modules = [ ../examples/lb1.nix { services.nginxHa.metrics = { enable = true; listenAddress = "2001:db8::11"; }; } ]; }).config;
      in c.services.nginxHa.declaration.metrics == { listen = "[2001:db8::11]:9586"; };
    metricsListenOverrides =
      let c = (tlib.evalSystem { modules = [ ../examples/lb1.nix { services.nginxHa.metrics = { enable = true; listen = "[::1]:9587"; openFirewall = true; }; } ]; }).config;
      in c.services.nginxHa.declaration.metrics == { listen = "[::1]:9587"; }
        && builtins.elem 9587 c.networking.firewall.allowedTCPPorts;
    metricsListenWithoutEnableExplained = assertsWith
      [ ../examples/lb1.nix { services.nginxHa.metrics.listen = "127.0.0.1:9586"; } ]
      "services.nginxHa.metrics.listen is set but services.nginxHa.metrics.enable is false";
    storeSecretRefused = assertsWith
      [ ../examples/lb1.nix { services.nginxHa.instances.legacy.authPasswordFile = lib.mkForce "${builtins.storeDir}/aaaa-pw"; } ]
      "is in the Nix store";
  };

  unitText = (cfgOf "lb1-iptables").systemd.units."nginx-ha.service".text;

  # ---- light evaluation of the options alone --------------------------------
  # Only services.nginxHa's option declarations and their values matter for
  # the declaration; the options the module sets elsewhere get stubs.
  stub = lib.mkOption { type = lib.types.anything; default = { }; };
  lightEval = config: (lib.evalModules {
    modules = [
      ../.
      {
        options = {
          assertions = stub;
          environment = stub;
          systemd = stub;
          boot = stub;
          services.nginx = stub;
          networking = stub;
        };
        config._module.args.pkgs = { };
        config._module.check = true;
      }
      { services.nginxHa = config; }
    ];
  });
  declarationOf = config: (lightEval config).config.services.nginxHa.declaration;

  instanceV3 = {
    interface = "eth1";
    virtualRouterId = 51;
    virtualIps = [ "192.0.2.100/24" ];
    advertInterval = "100ms";
    unicastPeers = [ "192.0.2.11" "192.0.2.12" ];
  };
  # Hash upstreams refuse backup servers, so one base goes without.
  nginxPart = firstLocation: hash: {
    upstreams = {
      app.servers = [{ address = "198.51.100.5:8080"; } { address = "198.51.100.6:8080"; }];
    } // lib.optionalAttrs hash {
      media = {
        method.hash = { key = "$request_uri"; consistent = true; };
        servers = [{ address = "198.51.100.7:8080"; }];
      };
    };
    sites.www = {
      serverNames = [ "www.example.org" ];
      listen = [{ address = "192.0.2.100"; port = 443; ssl = true; } { port = 80; }];
      tls = { certificateFile = "/run/secrets/www.crt"; keyFile = "/run/secrets/www.key"; };
      locations = [ firstLocation { path = "/media/"; proxyPass = if hash then "http://media" else "app"; } ];
      extraDirectives = [{ name = "client_max_body_size"; args = [ "1m" ]; }];
    };
  };
  node = { name = "lb1"; priority = 150; };
  # Complete, valid configurations; each leaf is tried on every base that
  # has its parent, and must be accepted on at least one.
  bases = {
    v3 = { inherit node; instances.web = instanceV3; checks.extra.api = { type = "http"; url = "http://127.0.0.1:8080/healthz"; }; nginx = nginxPart { path = "/"; proxyPass = "app"; } true; };
    v2 = { inherit node; instances.legacy = { interface = "eth1"; virtualRouterId = 60; version = 2; virtualIps = [ "192.0.2.200/24" ]; authPasswordFile = "/run/secrets/vrrp"; }; };
    tcp = { inherit node; instances.web = instanceV3; checks.extra.db = { type = "tcp"; address = "127.0.0.1:5432"; }; };
    exec = { inherit node; instances.web = instanceV3; checks.extra.ready = { type = "exec"; command = [ "/run/current-system/sw/bin/true" ]; }; };
    root = { inherit node; instances.web = instanceV3; nginx = nginxPart { path = "/static/"; root = "/srv/www"; } true; };
    return = { inherit node; instances.web = instanceV3; nginx = nginxPart { path = "/old"; return = { status = 301; target = "https://www.example.org/"; }; } true; };
    nocheck = { inherit node; instances.web = instanceV3; checks.nginx.enable = false; nginx = nginxPart { path = "/"; proxyPass = "app"; } false; };
  };

  # Sets `path` (with "<name>" for every map entry and "*" for the first
  # list item) to `value` inside `cfg`; null when the base lacks the parent.
  setPath = path: value: cfg:
    if path == [ ] then value
    else
      let
        key = builtins.head path;
        rest = builtins.tail path;
      in
      if key == "<name>" then
        (if builtins.isAttrs cfg && cfg != { } then
          let new = lib.mapAttrs (_: setPath rest value) cfg; in
          if lib.any (v: v == null) (builtins.attrValues new) then null else new
        else null)
      else if key == "*" then
        (if builtins.isList cfg && cfg != [ ] then
          let first = setPath rest value (builtins.head cfg); in
          if first == null then null else [ first ] ++ builtins.tail cfg
        else null)
      else if !(builtins.isAttrs cfg) then null
      else if rest == [ ] then cfg // { ${key} = value; }
      else
        let
          # A missing object along the way is created (e.g. `announce`);
          # a missing map or list means the base has no such entry.
          inner = setPath rest value (cfg.${key} or (if builtins.elem (builtins.head rest) [ "<name>" "*" ] then null else { }));
        in
        if inner == null then null else cfg // { ${key} = inner; };

  leafName = l: lib.concatStringsSep "." l.path;
  # The endpoint's fields reach the JSON only with the NixOS switch on.
  withMetricsOn = l: cfg:
    if cfg != null && builtins.head l.path == "metrics"
    then cfg // { metrics = cfg.metrics // { enable = true; }; }
    else cfg;
  exampleOf = l: builtins.head (l.schema.examples or [ (throw "schema leaf ${leafName l} has no example: add #[schemars(example = ...)] to its Rust field") ]);

  variants = lib.listToAttrs (lib.concatMap
    (l: lib.concatLists (lib.mapAttrsToList
      (baseName: base:
        let cfg = withMetricsOn l (setPath l.path (exampleOf l) base); in
        lib.optional (cfg != null) (lib.nameValuePair "${leafName l}@${baseName}" (declarationOf cfg)))
      bases))
    (schema.leaves [ ] schema.schema));

  # Every schema path (objects too) as the option documentation names it.
  schemaPaths = path: s:
    let
      inner = if (s.type or null) == [ "object" "null" ] then s // { type = "object"; } else s;
      here = lib.optional (path != [ ]) (lib.concatStringsSep "." path);
    in
    here ++ (
      if (inner.type or null) == "object" && inner ? properties then
        lib.concatLists (lib.mapAttrsToList (n: schemaPaths (path ++ [ n ])) inner.properties)
      else if (inner.type or null) == "object" && (inner.additionalProperties.properties or null) != null then
        lib.filter (p: p != lib.concatStringsSep "." (path ++ [ "<name>" ]))
          (schemaPaths (path ++ [ "<name>" ]) inner.additionalProperties)
      else if (inner.type or null) == "array" && (inner.items.properties or null) != null then
        lib.filter (p: p != lib.concatStringsSep "." (path ++ [ "*" ])) (schemaPaths (path ++ [ "*" ]) inner.items)
      else [ ]
    );

  nixosOnly = [ "enable" "package" "openFirewall" "checkConfig" "declaration" "configFile" "metrics.enable" "metrics.listenAddress" "metrics.port" "metrics.openFirewall" ]
    ++ map (k: "nginx.${k}") [ "enable" "loopbackStatusPage" "openFirewall" "firewallPorts" "nonlocalBind" ];
  optionPaths =
    let
      docs = lib.optionAttrSetToDocList (lightEval { }).options.services.nginxHa;
      prefix = "services.nginxHa.";
    in
    builtins.filter (n: !(builtins.elem n nixosOnly))
      (map (o: lib.removePrefix prefix o.name) (builtins.filter (o: !(o.internal or false)) docs));
  allSchemaPaths = lib.unique (schemaPaths [ ] schema.schema);

  coverage = {
    schemaWithoutOption = lib.subtractLists optionPaths allSchemaPaths;
    optionWithoutSchema = lib.subtractLists allSchemaPaths optionPaths;
  };

  # Integer leaves one past each end of their range: the option types must
  # refuse them at evaluation (the daemon refuses them too: tests/schema.rs).
  outOfRange = lib.listToAttrs (lib.concatMap
    (l:
      let s = l.schema; in
      lib.optionals (s ? minimum && s ? maximum) (lib.concatLists (lib.mapAttrsToList
        (_end: value:
          let cfg = lib.findFirst (c: c != null) null (map (setPath l.path value) (builtins.attrValues bases)); in
          lib.optional (cfg != null) (lib.nameValuePair "${leafName l}=${toString value}"
            (builtins.tryEval (builtins.deepSeq (declarationOf cfg) true)).success))
        { low = s.minimum - 1; high = s.maximum + 1; })))
    (schema.leaves [ ] schema.schema));

  docs =
    let
      pkgs = import nixpkgs { system = "x86_64-linux"; overlays = [ (final: _: { nginx-ha = final.callPackage ../../nix/package.nix { }; }) ]; };
      evaluated = tlib.evalSystem { modules = [ ../examples/lb1.nix ]; };
    in
    pkgs.nixosOptionsDoc {
      options = { inherit (evaluated.options.services) nginxHa; };
      warningsAreErrors = true;
    };
in
{
  inherit systems wiring unitText variants coverage outOfRange docs;
  toplevels = lib.mapAttrs (_: s: s.config.system.build.toplevel) systems;
  # The examples' own declarations, for check-config.
  declarations = lib.mapAttrs (_: s: s.config.services.nginxHa.declaration) systems;
}
