# Evaluates services.nginxHa with the real nixpkgs `lib` and small stub
# declarations for the NixOS options the module sets, so the module can be
# tested on machines that cannot build or run NixOS. Driven by
# .ci/nix-checks:
#
#   checks          { name = true|false; }   types, defaults, generated config
#   examples.NAME   the declaration JSON      fed to `nginx-ha check-config`
#   bad.NAME.result must FAIL to evaluate; stderr must contain bad.NAME.expect
#
# NIXPKGS_LIB: a nixpkgs (or nix-community/nixpkgs.lib) checkout, or its
# lib/ directory. flake.nix passes `lib` instead.
{ lib ? null # nixpkgs lib, when called from Nix (flake.nix)
, nixpkgsLib ? builtins.getEnv "NIXPKGS_LIB" # else a path, from .ci/nix-checks
}:
let
  libPath =
    let p = /. + nixpkgsLib;
    in if builtins.pathExists (p + "/lib/default.nix") then p + "/lib" else p;
  lib' =
    if lib != null then lib
    else if nixpkgsLib == "" then throw "NIXPKGS_LIB is not set"
    else import libPath;
in
let
  lib = lib';
  inherit (lib) mkOption types;

  fakeDrv = name: extra: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  } // extra;

  pkgsStub = {
    nginx-ha = fakeDrv "nginx-ha" { };
    coreutils = fakeDrv "coreutils" { };
    # Keeps the build script so the checks can see what would run.
    runCommand = name: env: script: fakeDrv name { inherit env script; };
  };

  anyAttrs = types.attrsOf types.anything;
  freeform = types.submodule { freeformType = anyAttrs; };

  # Just enough of NixOS for the module's `config` to land somewhere.
  stubs = {
    options = {
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
      networking.hostName = mkOption { type = types.str; default = "nixos"; };
      networking.firewall = {
        extraCommands = mkOption { type = types.lines; default = ""; };
        extraInputRules = mkOption { type = types.lines; default = ""; };
        allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
      };
      services.nginx = {
        enable = mkOption { type = types.bool; default = false; };
        appendHttpConfig = mkOption { type = types.lines; default = ""; };
        virtualHosts = mkOption { type = types.attrsOf freeform; default = { }; };
      };
      systemd.services = mkOption { type = types.attrsOf freeform; default = { }; };
      boot.kernel.sysctl = mkOption { type = anyAttrs; default = { }; };
      environment.systemPackages = mkOption { type = types.listOf types.anything; default = [ ]; };
      environment.etc = mkOption { type = anyAttrs; default = { }; };
    };
    config._module.args.pkgs = pkgsStub;
  };

  eval = modules: lib.evalModules { modules = [ stubs ./default.nix ] ++ modules; };

  # What NixOS does with assertions when it builds the system.
  system = modules:
    let
      inherit (eval modules) config;
      failed = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
    in
    if failed != [ ] then
      throw "\nFailed assertions:\n${lib.concatMapStrings (m: "- ${m}\n") failed}"
    else config;

  # Forces what a system build would: the JSON, the unit, firewall, nginx.
  forceAll = c: builtins.deepSeq [
    c.services.nginxHa.declaration
    c.systemd.services
    c.networking.firewall
    c.boot.kernel.sysctl
    c.services.nginx
  ]
    c;

  lb1 = system [ ./examples/lb1.nix ];
  lb2 = system [ ./examples/lb2.nix ];

  # The smallest useful node: one multicast instance, IPv6 too.
  minimal = {
    services.nginxHa = {
      enable = true;
      node.priority = 100;
      instances.v6 = {
        interface = "eth0";
        virtualRouterId = 7;
        virtualIps = [ "2001:db8::100/64" ];
      };
    };
  };
  min = system [ minimal ];

  # Sites listening on the VIP: sysctl and site ports.
  withSites = system [ ./examples/lb1.nix ./examples/sites.nix ];

  # examples/two-node.json written as Nix: must give the same JSON.
  twoNodeJson = builtins.fromJSON (builtins.readFile ../examples/two-node.json);
  twoNode = system [{
    services.nginxHa = {
      enable = true;
      node = { name = "lb-a"; priority = 150; };
      instances.front = {
        interface = "eth0";
        virtualRouterId = 42;
        virtualIps = [ "192.0.2.100/24" ];
        advertInterval = "100ms";
        unicastSource = "192.0.2.11";
        unicastPeers = [ "192.0.2.11" "192.0.2.12" ];
      };
      checks.nginx = { statusUrl = "http://127.0.0.1:8081/nginx_status"; fall = 2; rise = 3; };
      nginx = {
        upstreams.app = {
          method = "leastConn";
          servers = [
            { address = "198.51.100.31:8000"; weight = 2; }
            { address = "198.51.100.32:8000"; }
            { address = "198.51.100.33:8000"; backup = true; }
          ];
          keepalive = 32;
        };
        sites.app = {
          serverNames = [ "app.example.com" ];
          locations = [
            { path = "/"; proxyPass = "app"; }
            { path = "/ws/"; proxyPass = "app"; websockets = true; }
            { path = "/static/"; root = "/srv/app"; }
          ];
        };
      };
    };
  }];

  # One site on top of the base instance (and an IPv6 one), for the
  # derived sysctls, ports and status page.
  v6Instance = {
    interface = "eth0";
    virtualRouterId = 52;
    virtualIps = [ "2001:db8::100/64" ];
  };
  oneSite = site: system (base {
    services.nginxHa.instances.v6 = v6Instance;
    services.nginxHa.nginx.sites.s = { serverNames = [ "s.example.org" ]; locations = [{ path = "/"; root = "/srv/s"; }]; } // site;
  });
  sysctl = c: c.boot.kernel.sysctl;
  ports = c: c.networking.firewall.allowedTCPPorts;
  tlsFiles = { certificateFile = "/run/s.crt"; keyFile = "/run/s.key"; };
  onV6Vip = oneSite { listen = [{ address = "2001:DB8:0::100"; port = 8080; }]; };
  onV4Vip = oneSite { listen = [{ address = "192.0.2.100"; port = 80; }]; };
  onOtherAddress = oneSite { listen = [{ address = "192.0.2.50"; port = 80; } { address = "127.0.0.1"; port = 8088; }]; };
  wildcardTls = oneSite { tls = tlsFiles; };
  vhostOnVip = system (base {
    services.nginx.virtualHosts.vip.listen = [{ addr = "192.0.2.100"; port = 80; }];
  });
  forcedNonlocal = system (base {
    services.nginxHa.instances.v6 = v6Instance;
    services.nginxHa.nginx.nonlocalBind = true;
  });
  statusPageOff = system (base {
    services.nginxHa.nginx = {
      sites.s = { serverNames = [ "s.example.org" ]; locations = [{ path = "/"; root = "/srv/s"; }]; };
      statusPage.enable = false;
    };
    services.nginxHa.checks.nginx.enable = false;
  });

  decl = c: c.services.nginxHa.declaration;
  unit = c: c.systemd.services.nginx-ha;
  opts = (eval [ minimal ]).options.services.nginxHa;
  instOpts = opts.instances.type.getSubOptions [ ];
  nginxOpts = opts.nginx.type.getSubOptions [ ];
  upOpts = nginxOpts.upstreams.type.getSubOptions [ ];
  serverOpts = upOpts.servers.type.nestedTypes.elemType.getSubOptions [ ];
  siteOpts = nginxOpts.sites.type.getSubOptions [ ];
  listenOpts = siteOpts.listen.type.nestedTypes.elemType.nestedTypes.elemType.getSubOptions [ ];
  locOpts = siteOpts.locations.type.nestedTypes.elemType.getSubOptions [ ];

  # One base instance, then each bad case changes one thing.
  base = extra: [
    {
      services.nginxHa = {
        enable = true;
        node.priority = 100;
        instances.web = {
          interface = "eth0";
          virtualRouterId = 51;
          virtualIps = [ "192.0.2.100/24" ];
        };
      };
    }
    extra
  ];
  web = attrs: base { services.nginxHa.instances.web = attrs; };
  nh = attrs: base { services.nginxHa = attrs; };
  # A bad case must fail evaluation with `expect`. For the rules mirrored
  # from check-config, the JSON generated without the assertions must also
  # be refused by check-config (`json`, run by .ci/nix-checks), which keeps
  # the two sides honest; `moduleOnly` marks rules check-config cannot know.
  bad = expect: modules: {
    inherit expect;
    result = forceAll (system modules);
    json = (eval modules).config.services.nginxHa.declaration;
    moduleOnly = false;
  };
  badModuleOnly = expect: modules: bad expect modules // { moduleOnly = true; };
  typeError = path: "option `services.nginxHa.${path}' is not of type";
  # A valid nginx part (one upstream, one site); each nginx case changes
  # one thing in it.
  app = { servers = [{ address = "198.51.100.31:8000"; }]; };
  www = {
    serverNames = [ "www.example.org" ];
    locations = [{ path = "/"; proxyPass = "app"; }];
  };
  withNginx = { upstreams ? { inherit app; }, site ? { }, extra ? { } }: nh ({
    nginx = { inherit upstreams; sites.www = www // site; };
  } // extra);
  location = loc: withNginx { site.locations = [ loc ]; };
  directive = d: withNginx { site.extraDirectives = [ d ]; };
  server = srv: withNginx { upstreams.app.servers = [ srv ]; };
  nginxError = path: "option `services.nginxHa.nginx.${path}' is not of type";
  # The first element of a list option: lib names it by definition/entry.
  listTypeError = path: "option `services.nginxHa.${path}.\"[definition 1-entry 1]\"' is not of type";
in
{
  checks = {
    baseIsValid = (decl (forceAll (system (base { })))).instances.web.virtualRouterId == 51;
    # Defaults and types, as documented.
    openFirewallDefaultOn = opts.openFirewall.default;
    checkConfigDefaultOn = opts.checkConfig.default;
    priorityType = opts.node.priority.type.description == "integer between 1 and 254 (both inclusive)";
    vridType = instOpts.virtualRouterId.type.description == "integer between 1 and 255 (both inclusive)";
    versionDefaultNull = instOpts.version.default == null;
    durationTypeNamed = lib.hasPrefix "null or duration string" instOpts.advertInterval.type.description;
    nodeNameFromHostName = (decl lb1).node.name == "lb1" && (decl lb2).node.name == "lb2";
    onlyNodeDiffers = removeAttrs (decl lb1) [ "node" ] == removeAttrs (decl lb2) [ "node" ];

    # Unset options are left to the daemon: no nulls, no defaults copied.
    nullsDropped = !(lib.hasInfix "null" (builtins.toJSON (decl lb1)));
    versionLeftToDaemon = !((decl lb1).instances.web ? version);
    riseLeftToDaemon = !((decl lb1).checks.nginx ? rise);
    setValuesKept = (decl lb1).instances.web.advertInterval == "100ms"
      && (decl lb1).checks.nginx.interval == "200ms";

    # Secrets: the daemon gets the credential path; systemd gets the file.
    passwordViaCredential = (decl lb1).instances.legacy.authPasswordFile
      == "/run/credentials/nginx-ha.service/vrrp-legacy";
    passwordPathNotInJson = !(lib.hasInfix "/run/agenix" (builtins.toJSON (decl lb1)));
    loadCredential = (unit lb1).serviceConfig.LoadCredential == [ "vrrp-legacy:/run/agenix/vrrp-password" ];

    # The unit: hardening.nix plus the commands.
    unitHardened = let s = (unit lb1).serviceConfig; in
      s.Type == "notify" && s.DynamicUser && s.NoNewPrivileges
      && s.CapabilityBoundingSet == [ "CAP_NET_RAW" "CAP_NET_ADMIN" ]
      && s.AmbientCapabilities == [ "CAP_NET_RAW" "CAP_NET_ADMIN" ]
      && s.ProtectSystem == "strict" && s.WatchdogSec == "10s"
      && s.SystemCallFilter == [ "@system-service" "~@privileged @resources" ];
    unitSameAsContrib = builtins.intersectAttrs (import ./hardening.nix) (unit lb1).serviceConfig
      == import ./hardening.nix;
    execStart = lib.hasInfix "/bin/nginx-ha run --config /etc/nginx-ha/nginx-ha.json --runtime-dir %t/nginx-ha --state-dir %S/nginx-ha"
      (unit lb1).serviceConfig.ExecStart;
    execReload = lib.hasSuffix "kill -HUP $MAINPID" (unit lb1).serviceConfig.ExecReload;
    orderedAfterNginx = builtins.elem "nginx.service" (unit lb1).after
      && builtins.elem "network-online.target" (unit lb1).after;
    reloadOnNewDeclaration = (unit lb1).reloadTriggers == [ lb1.services.nginxHa.configFile ];
    configChecked = lib.hasInfix "nginx-ha check-config --config" lb1.services.nginxHa.configFile.script;
    etcIsChecked = lb1.environment.etc."nginx-ha/nginx-ha.json".source == lb1.services.nginxHa.configFile;

    # VRRP through the firewall: unicast only from the peers, multicast to
    # the VRRP group, for both firewalls.
    iptablesUnicastPeers = lib.hasInfix "iptables -A nixos-fw -i eth1 -p 112 -s 192.0.2.11" lb1.networking.firewall.extraCommands
      && lib.hasInfix "-s 192.0.2.12" lb1.networking.firewall.extraCommands;
    nftablesUnicastPeers = lib.hasInfix ''iifname "eth1" ip saddr { 192.0.2.11, 192.0.2.12 } ip protocol 112 accept'' lb1.networking.firewall.extraInputRules;
    multicastGroup = lib.hasInfix "ip6tables -A nixos-fw -i eth0 -p 112 -d ff02::12" min.networking.firewall.extraCommands
      && lib.hasInfix "ip6 daddr ff02::12 meta l4proto 112 accept" min.networking.firewall.extraInputRules;
    legacyMulticastV4 = lib.hasInfix "-p 112 -d 224.0.0.18" lb1.networking.firewall.extraCommands;
    openFirewallOff = (system (base { services.nginxHa.openFirewall = false; })).networking.firewall.extraCommands == "";

    # nginx: enabled, status page on loopback, sysctl and ports for sites.
    nginxEnabled = lb1.services.nginx.enable;
    statusPageLoopback = lb1.services.nginx.virtualHosts.nginx-ha-status.listen == [{ addr = "127.0.0.1"; port = 8081; }];
    statusPageStubStatus = lib.hasInfix "stub_status;" lb1.services.nginx.virtualHosts.nginx-ha-status.locations."/nginx_status".extraConfig;
    noRenderWithoutSites = lb1.services.nginx.appendHttpConfig == "";
    renderWithSites = lib.hasInfix "include /nix/store/" withSites.services.nginx.appendHttpConfig;
    noSysctlWithoutVipListener = lb1.boot.kernel.sysctl == { };
    sysctlWithVipListener = withSites.boot.kernel.sysctl."net.ipv4.ip_nonlocal_bind" == 1
      && !(withSites.boot.kernel.sysctl ? "net.ipv6.ip_nonlocal_bind");
    sitePortsOpened = lib.sort lib.lessThan withSites.networking.firewall.allowedTCPPorts == [ 80 443 ];
    noPortsWithoutSites = lb1.networking.firewall.allowedTCPPorts == [ ];
    nginxDeclarationPassedThrough = builtins.head (decl withSites).nginx.sites.www.serverNames == "www.example.org"
      && !((decl withSites).nginx ? enable) && !((decl withSites).nginx ? firewallPorts);
    nginxIntegrationOff = !(system (base { services.nginxHa.nginx.enable = false; })).services.nginx.enable;

    # The nginx part: typed like src/config/nginx.rs, daemon defaults null.
    nginxSitesTyped = lib.hasPrefix "attribute set of (submodule)" nginxOpts.sites.type.description
      && lib.hasPrefix "attribute set of (submodule)" nginxOpts.upstreams.type.description;
    nginxPortType = listenOpts.port.type.description == "integer between 1 and 65535 (both inclusive)";
    nginxListenAddressTyped = lib.hasInfix "IPv4 or IPv6 address" listenOpts.address.type.description;
    nginxMethodExpressible = lib.hasInfix ''"roundRobin", "leastConn", "ipHash", "random", or { hash''
      upOpts.method.type.description;
    nginxMatchEnum = locOpts.match.type.description == ''null or one of "prefix", "exact"'';
    nginxDaemonDefaultsNull = lib.all (o: o.default == null) [
      upOpts.method
      upOpts.keepalive
      serverOpts.weight
      serverOpts.backup
      siteOpts.listen
      siteOpts.tls
      listenOpts.ssl
      locOpts.websockets
      nginxOpts.defaultServer
      nginxOpts.statusPage.enable
    ];
    nginxDescribed = lib.all (o: o.description != "" && o ? example)
      [ upOpts.servers upOpts.method siteOpts.serverNames siteOpts.locations listenOpts.port locOpts.proxyPass ];
    noNginxKeyWithoutDeclaration = !((decl lb1) ? nginx);

    # Nix written like examples/two-node.json gives exactly its JSON.
    twoNodeNginxJson = (decl twoNode).nginx == twoNodeJson.nginx;
    # The rest too, up to the empty lists/attrsets the other options emit.
    twoNodeWholeJson = (import ./lib.nix { inherit lib; }).pruneEmpty (decl twoNode) == twoNodeJson;

    # The JSON of the typed values: integration switches, nulls and empty
    # lists left out; method and directives as the daemon reads them.
    nginxJsonShape =
      let n = (decl withSites).nginx; in
      n.upstreams.media.method == { hash = { key = "$request_uri"; consistent = true; }; }
      && n.upstreams.app.method == "leastConn"
      && n.upstreams.app.servers == [
        { address = "10.0.0.5:8080"; weight = 2; }
        { address = "10.0.0.6:8080"; }
        { address = "10.0.0.7:8080"; backup = true; }
      ]
      && n.sites.www.listen == [
        { address = "192.0.2.100"; port = 443; ssl = true; }
        { address = "192.0.2.100"; port = 80; }
      ]
      && builtins.elem { path = "/old"; match = "exact"; return = { status = 301; target = "https://www.example.org/new"; }; } n.sites.www.locations
      && n.sites.www.extraDirectives == [
        { name = "client_max_body_size"; args = [ "10m" ]; }
        { name = "add_header"; args = [ "X-Frame-Options" "DENY" ]; }
      ]
      && builtins.attrNames n == [ "sites" "upstreams" ];
    nginxEmptyListsDropped = (decl (oneSite { extraDirectives = [ ]; listen = [ ]; })).nginx.sites.s
      == { serverNames = [ "s.example.org" ]; locations = [{ path = "/"; root = "/srv/s"; }]; };

    # ip_nonlocal_bind per family, from the sites' listen.address that is a
    # virtual IP (listens_on_nonlocal), IPv6 compared in one spelling.
    sysctlV6Only = sysctl onV6Vip == { "net.ipv6.ip_nonlocal_bind" = 1; };
    sysctlV4Only = sysctl onV4Vip == { "net.ipv4.ip_nonlocal_bind" = 1; };
    noSysctlOffVip = sysctl onOtherAddress == { };
    noSysctlWildcard = sysctl wildcardTls == { };
    sysctlVirtualHostOnVip = sysctl vhostOnVip == { "net.ipv4.ip_nonlocal_bind" = 1; };
    sysctlForcedAllFamilies = sysctl forcedNonlocal
      == { "net.ipv4.ip_nonlocal_bind" = 1; "net.ipv6.ip_nonlocal_bind" = 1; };

    # Firewall: the sites' ports; default 80, 443 too with tls; loopback
    # listeners left out.
    portsDefault = ports (oneSite { }) == [ 80 ];
    portsTlsDefault = ports wildcardTls == [ 80 443 ];
    portsExplicit = ports onV6Vip == [ 8080 ];
    portsNotLoopback = ports onOtherAddress == [ 80 ];
    portsOverride = ports (system (base { services.nginxHa.nginx.firewallPorts = [ 8443 ]; })) == [ 8443 ];

    # The stub_status page: served by the rendered declaration when it has
    # one, by a services.nginx virtual host otherwise.
    statusPageFromDeclaration = !(withSites.services.nginx.virtualHosts ? nginx-ha-status)
      && !((decl withSites).nginx ? statusPage);
    statusPageDisabledRendered = (decl statusPageOff).nginx.statusPage == { enable = false; }
      && lib.hasInfix "include /nix/store/" statusPageOff.services.nginx.appendHttpConfig;

    disabledDoesNothing = (system [{ services.nginxHa.node.priority = 1; }]).systemd.services == { };
  };

  examples = {
    lb1 = decl (forceAll lb1);
    lb2 = decl (forceAll lb2);
    minimal = decl (forceAll min);
    withSites = decl (forceAll withSites);
    twoNode = decl (forceAll twoNode);
    sitesV6 = decl (forceAll onV6Vip);
    sitesTls = decl (forceAll wildcardTls);
  };

  bad = {
    # Rejected by the option types (the message names the option).
    nodePriority255 = bad (typeError "node.priority") (nh { node.priority = lib.mkForce 255; });
    nodeNameSpace = bad (typeError "node.name") (nh { node.name = "lb 1"; });
    vridZero = bad "virtualRouterId' is not of type" (web { virtualRouterId = lib.mkForce 0; });
    version4 = bad "version' is not of type" (web { version = 4; });
    noVips = bad "virtualIps' is not of type" (web { virtualIps = lib.mkForce [ ]; });
    vipWithoutPrefix = bad (listTypeError "instances.web.virtualIps") (web { virtualIps = lib.mkForce [ "192.0.2.100" ]; });
    vipBadOctet = bad (listTypeError "instances.web.virtualIps") (web { virtualIps = lib.mkForce [ "192.0.2.300/24" ]; });
    durationWithoutUnit = bad "advertInterval' is not of type" (web { advertInterval = "1"; });
    interfaceTooLong = bad "interface' is not of type" (web { interface = lib.mkForce "averyveryverylongname"; });
    announceCount = bad "announce.count' is not of type" (web { announce.count = 101; });
    riseZero = bad (typeError "checks.nginx.rise") (nh { checks.nginx.rise = 0; });
    weightTooBig = bad (typeError "checks.nginx.weight") (nh { checks.nginx.weight = 300; });
    peerNotAnAddress = bad (listTypeError "instances.web.unicastPeers") (web { unicastPeers = [ "lb2.example.org" ]; });

    # Rejected by assertions (the rules check-config applies across fields).
    noInstances = bad "services.nginxHa.instances: at least one VRRP instance is needed"
      [{ services.nginxHa = { enable = true; node.priority = 100; }; }];
    instanceName = bad "services.nginxHa.instances.web.1: instance names must be"
      (nh { instances."web.1" = { interface = "eth0"; virtualRouterId = 52; virtualIps = [ "192.0.2.101/24" ]; }; });
    mixedFamilies = bad "services.nginxHa.instances.web.virtualIps.1: 2001:db8::1/64 is IPv6 but the first virtual IP is IPv4"
      (web { virtualIps = lib.mkForce [ "192.0.2.100/24" "2001:db8::1/64" ]; });
    vipTwice = bad "services.nginxHa.instances.web.virtualIps.1: 192.0.2.100/32 is listed twice"
      (web { virtualIps = lib.mkForce [ "192.0.2.100/24" "192.0.2.100/32" ]; });
    vipMulticast = bad "services.nginxHa.instances.web.virtualIps.0: 224.0.0.5/24 cannot be a virtual IP"
      (web { virtualIps = lib.mkForce [ "224.0.0.5/24" ]; });
    vipLoopback = bad "services.nginxHa.instances.web.virtualIps.0: 127.0.0.2/8 cannot be a virtual IP"
      (web { virtualIps = lib.mkForce [ "127.0.0.2/8" ]; });
    v2IPv6 = bad "services.nginxHa.instances.web.version: VRRPv2 (RFC 3768) is IPv4 only"
      (web { version = 2; virtualIps = lib.mkForce [ "2001:db8::1/64" ]; });
    v2SubSecond = bad "services.nginxHa.instances.web.advertInterval: 100ms: VRRPv2 carries whole seconds"
      (web { version = 2; advertInterval = "100ms"; });
    v3NotCentiseconds = bad "services.nginxHa.instances.web.advertInterval: 15ms: VRRPv3 carries centiseconds"
      (web { advertInterval = "15ms"; });
    v3TooLong = bad "services.nginxHa.instances.web.advertInterval: 41s: VRRPv3 carries centiseconds"
      (web { advertInterval = "41s"; });
    priority255NotOwner = bad "services.nginxHa.instances.web.priority: 255 is reserved for the address owner"
      (web { priority = 255; });
    ownerWithPriority = bad "services.nginxHa.instances.web.priority: 200: an address owner always has priority 255"
      (web { addressOwner = true; priority = 200; });
    passwordOnV3 = bad "services.nginxHa.instances.web.authPasswordFile: VRRPv3 has no authentication"
      (web { authPasswordFile = "/run/agenix/vrrp"; });
    passwordInStore = badModuleOnly "services.nginxHa.instances.web.authPasswordFile: /nix/store/0000-pw is in the Nix store"
      (web { version = 2; authPasswordFile = "/nix/store/0000-pw"; });
    passwordDotDot = badModuleOnly "services.nginxHa.instances.web.authPasswordFile: must be an absolute path without"
      (web { version = 2; authPasswordFile = "/run/../etc/shadow"; });
    sourceWithoutPeers = bad "services.nginxHa.instances.web.unicastSource: is set but unicastPeers is empty"
      (web { unicastSource = "192.0.2.11"; });
    sourceFamily = bad "services.nginxHa.instances.web.unicastSource: 2001:db8::11 is IPv6 but the virtual IPs are IPv4"
      (web { unicastSource = "2001:db8::11"; unicastPeers = [ "192.0.2.12" ]; });
    peerFamily = bad "services.nginxHa.instances.web.unicastPeers.0: 2001:db8::12 is IPv6 but the virtual IPs are IPv4"
      (web { unicastPeers = [ "2001:db8::12" ]; });
    peerIsVip = bad "services.nginxHa.instances.web.unicastPeers.1: 192.0.2.100 is a virtual IP"
      (web { unicastPeers = [ "192.0.2.11" "192.0.2.100" ]; });
    peerTwice = bad "services.nginxHa.instances.web.unicastPeers.1: 192.0.2.11 is listed twice"
      (web { unicastPeers = [ "192.0.2.11" "192.0.2.11" ]; });
    peerMulticast = bad "services.nginxHa.instances.web.unicastPeers.0: 224.0.0.18 cannot be a unicast peer"
      (web { unicastPeers = [ "224.0.0.18" ]; });
    checksumAsV2OnV2 = bad "services.nginxHa.instances.web.v3ChecksumAsV2: only applies to VRRPv3 over IPv4"
      (web { version = 2; v3ChecksumAsV2 = true; });
    preemptDelayLong = bad "services.nginxHa.instances.web.preemptDelay: is more than 1h"
      (web { preemptDelay = "2h"; });
    announceDelayLong = bad "services.nginxHa.instances.web.announce.delay: is more than 10s"
      (web { announce.delay = "11s"; });
    trackUnknown = bad ''services.nginxHa.instances.web.trackChecks.0: "api" is not a check (known: nginx)''
      (web { trackChecks = [ "api" ]; });
    trackDisabledNginx = bad "services.nginxHa.instances.web.trackChecks.0: tracks the nginx check, but checks.nginx.enable is false"
      (base { services.nginxHa = { instances.web.trackChecks = [ "nginx" ]; checks.nginx.enable = false; }; });
    vridClash = bad ''services.nginxHa.instances.web2.virtualRouterId: 51 is already used by instance "web" on eth0 for IPv4''
      (nh {
        instances.web2 = {
          interface = "eth0";
          virtualRouterId = 51;
          virtualIps = [ "192.0.2.101/24" ];
        };
      });
    nginxTimeoutOverInterval = bad "services.nginxHa.checks.nginx.timeout: must be more than 0 and at most the interval"
      (nh { checks.nginx = { interval = "100ms"; timeout = "200ms"; }; });
    nginxIntervalTooShort = bad "services.nginxHa.checks.nginx.interval: must be between 10ms and 1h"
      (nh { checks.nginx = { interval = "5ms"; timeout = "1ms"; }; });
    statusUrlHttps = bad ''services.nginxHa.checks.nginx.statusUrl: "https://127.0.0.1/status" must be http://''
      (nh { checks.nginx.statusUrl = "https://127.0.0.1/status"; });
    statusUrlDns = bad ''services.nginxHa.checks.nginx.statusUrl: "http://lb1.example.org/status" must be http://''
      (nh { checks.nginx.statusUrl = "http://lb1.example.org/status"; });
    statusPageNotLoopback = badModuleOnly "services.nginxHa.checks.nginx.statusUrl: nginx.loopbackStatusPage serves the status page on loopback only"
      (nh { checks.nginx.statusUrl = "http://192.0.2.11:8081/nginx_status"; });
    extraHttpNoUrl = bad "services.nginxHa.checks.extra.api.url: is required for a http check"
      (nh { checks.extra.api.type = "http"; });
    extraTcpWithUrl = bad "services.nginxHa.checks.extra.db.url: does not apply to a tcp check"
      (nh { checks.extra.db = { type = "tcp"; address = "127.0.0.1:5432"; url = "http://127.0.0.1/"; }; });
    extraTcpBadAddress = bad ''services.nginxHa.checks.extra.db.address: "localhost:5432" is not ADDRESS:PORT''
      (nh { checks.extra.db = { type = "tcp"; address = "localhost:5432"; }; });
    extraExecRelative = bad ''services.nginxHa.checks.extra.disk.command.0: "check-disk" must be an absolute path''
      (nh { checks.extra.disk = { type = "exec"; command = [ "check-disk" ]; }; });
    extraNamedNginx = bad ''services.nginxHa.checks.extra.nginx: check names must be 1-64 characters of letters, digits, '-' and '_', and not "nginx"''
      (nh { checks.extra.nginx = { type = "tcp"; address = "127.0.0.1:80"; }; });
    extraStatusRange = bad "expectStatus' is not of type"
      (nh { checks.extra.api = { type = "http"; url = "http://127.0.0.1/"; expectStatus = 99; }; });
    notifyRelative = bad ''services.nginxHa.notify.master.0.0: "logger" must be an absolute path''
      (nh { notify.master = [ [ "logger" "became master" ] ]; });
    notifyTimeoutLong = bad "services.nginxHa.notify.timeout: must be more than 0 and at most 10m"
      (nh { notify.timeout = "11m"; });

    # nginx part, rejected by the option types.
    nginxPortZero = bad "port' is not of type"
      (withNginx { site.listen = [{ port = 0; }]; });
    nginxListenNotAnAddress = bad "address' is not of type"
      (withNginx { site.listen = [{ address = "vip.example.org"; port = 80; }]; });
    nginxMethodUnknown = bad (nginxError "upstreams.app.method")
      (withNginx { upstreams.app = app // { method = "fastest"; }; });
    nginxHashWithoutKey = bad "option `services.nginxHa.nginx.upstreams.app.method.hash.key' was accessed but has no value defined"
      (withNginx { upstreams.app = app // { method.hash.consistent = true; }; });
    nginxKeepaliveZero = bad (nginxError "upstreams.app.keepalive")
      (withNginx { upstreams.app = app // { keepalive = 0; }; });
    nginxWeightZero = bad "weight' is not of type"
      (server { address = "198.51.100.31:8000"; weight = 0; });
    nginxNoServers = bad (nginxError "upstreams.app.servers")
      (withNginx { upstreams.app.servers = [ ]; });
    nginxNoLocations = bad (nginxError "sites.www.locations")
      (withNginx { site.locations = [ ]; });
    nginxMatchRegex = bad "match' is not of type"
      (location { path = "/"; proxyPass = "app"; match = "regex"; });
    nginxReturnStatus = bad "status' is not of type"
      (location { path = "/"; return.status = 199; });
    nginxRootRelative = bad "root' is not of type"
      (location { path = "/"; root = "srv/www"; });
    nginxStatusListenName = bad (nginxError "statusPage.listen")
      (withNginx { extra.nginx.statusPage.listen = "localhost:8081"; });

    # nginx part, rejected by the assertions (and by check-config).
    nginxUnknownUpstream = bad ''services.nginxHa.nginx.sites.www.locations.0.proxyPass: "api" is not an upstream (known: app)''
      (location { path = "/"; proxyPass = "api"; });
    nginxUpstreamInUrlWithPort = bad ''services.nginxHa.nginx.sites.www.locations.0.proxyPass: "http://app:8000/": "app" is an upstream; drop the port''
      (location { path = "/"; proxyPass = "http://app:8000/"; });
    nginxProxyPassVariable = bad ''services.nginxHa.nginx.sites.www.locations.0.proxyPass: "http://$host" contains '$',''
      (location { path = "/"; proxyPass = "http://$host"; });
    nginxTlsWithoutSsl = bad "services.nginxHa.nginx.sites.www.listen: the site has tls but no listen entry with ssl = true"
      (withNginx { site = { tls = tlsFiles; listen = [{ port = 80; }]; }; });
    nginxSslWithoutTls = bad "services.nginxHa.nginx.sites.www.listen.0.ssl: needs the site's tls"
      (withNginx { site.listen = [{ port = 443; ssl = true; }]; });
    nginxListenTwice = bad "services.nginxHa.nginx.sites.www.listen.1: this address and port is listed twice"
      (withNginx { site.listen = [{ port = 80; } { port = 80; }]; });
    nginxListenMulticast = bad "services.nginxHa.nginx.sites.www.listen.0.address: 224.0.0.1 cannot be listened on"
      (withNginx { site.listen = [{ address = "224.0.0.1"; port = 80; }]; });
    nginxSemicolonInPath = bad ''services.nginxHa.nginx.sites.www.locations.0.path: "/a;b" contains ";": ';' would end the nginx directive''
      (location { path = "/a;b"; proxyPass = "app"; });
    nginxBraceInRoot = bad ''services.nginxHa.nginx.sites.www.locations.0.root: "/srv/{www" contains "{": braces would open''
      (location { path = "/"; root = "/srv/{www"; });
    nginxNewlineInPath = bad ''services.nginxHa.nginx.sites.www.locations.0.path: "/a\nb" contains "\n": a line break''
      (location { path = "/a\nb"; proxyPass = "app"; });
    nginxQuoteInKeyFile = bad ''services.nginxHa.nginx.sites.www.tls.keyFile: "/run/a'b.key" contains "'": quotes''
      (withNginx { site.tls = tlsFiles // { keyFile = "/run/a'b.key"; }; });
    nginxQuoteInServerName = bad ''services.nginxHa.nginx.sites.www.serverNames.0: "www\"x.org" is not a host name''
      (withNginx { site.serverNames = [ "www\"x.org" ]; });
    nginxRegexServerName = bad ''services.nginxHa.nginx.sites.www.serverNames.0: "~^www": regex server names are not supported''
      (withNginx { site.serverNames = [ "~^www" ]; });
    nginxServerNameTwice = bad ''services.nginxHa.nginx.sites.www.serverNames.1: "WWW.example.org" is listed twice''
      (withNginx { site.serverNames = [ "www.example.org" "WWW.example.org" ]; });
    nginxSiteName = bad "services.nginxHa.nginx.sites.w.w: site names must be 1-64 characters"
      (nh { nginx = { upstreams = { inherit app; }; sites."w.w" = www; }; });
    nginxUpstreamName = bad "services.nginxHa.nginx.upstreams.a;b: upstream names must be 1-64 characters"
      (withNginx { upstreams = { inherit app; "a;b" = app; }; });
    nginxAllBackup = bad "services.nginxHa.nginx.upstreams.app.servers: every server is a backup"
      (server { address = "198.51.100.31:8000"; backup = true; });
    nginxBackupIpHash = bad "services.nginxHa.nginx.upstreams.app.servers.1.backup: nginx does not support backup servers with ipHash"
      (withNginx { upstreams.app = { method = "ipHash"; servers = app.servers ++ [{ address = "198.51.100.32:8000"; backup = true; }]; }; });
    nginxBackupDown = bad "services.nginxHa.nginx.upstreams.app.servers.1.down: a server cannot be both backup and down"
      (withNginx { upstreams.app.servers = app.servers ++ [{ address = "198.51.100.32:8000"; backup = true; down = true; }]; });
    nginxServerNoPort = bad ''services.nginxHa.nginx.upstreams.app.servers.0.address: "198.51.100.31" is not IP:PORT''
      (server { address = "198.51.100.31"; });
    nginxServerTwice = bad ''services.nginxHa.nginx.upstreams.app.servers.1.address: "198.51.100.31:8000" is listed twice''
      (withNginx { upstreams.app.servers = app.servers ++ app.servers; });
    nginxFailTimeoutMs = bad "services.nginxHa.nginx.upstreams.app.servers.0.failTimeout: 500ms: nginx takes whole seconds"
      (server { address = "198.51.100.31:8000"; failTimeout = "500ms"; });
    nginxHashKeySpace = bad ''services.nginxHa.nginx.upstreams.app.method.hash.key: "$host $uri" contains whitespace''
      (withNginx { upstreams.app = app // { method.hash.key = "$host $uri"; }; });
    nginxTwoTargets = bad "services.nginxHa.nginx.sites.www.locations.0: set exactly one of proxyPass, root and return"
      (location { path = "/"; proxyPass = "app"; root = "/srv/www"; });
    nginxNoTarget = bad "services.nginxHa.nginx.sites.www.locations.0: set exactly one of proxyPass, root and return"
      (location { path = "/"; });
    nginxWebsocketsOnRoot = bad "services.nginxHa.nginx.sites.www.locations.0.websockets: only applies with proxyPass"
      (location { path = "/"; root = "/srv/www"; websockets = true; });
    nginxRedirectWithoutTarget = bad "services.nginxHa.nginx.sites.www.locations.0.return.target: a 301 redirect needs a target URL"
      (location { path = "/"; return.status = 301; });
    nginxRedirectNotUrl = bad ''services.nginxHa.nginx.sites.www.locations.0.return.target: "example.org" must be a URL''
      (location { path = "/"; return = { status = 302; target = "example.org"; }; });
    nginxPathWithQuery = bad ''services.nginxHa.nginx.sites.www.locations.0.path: "/a?b": nginx matches locations without the query string''
      (location { path = "/a?b"; proxyPass = "app"; });
    nginxLocationTwice = bad ''services.nginxHa.nginx.sites.www.locations.1.path: "/" is listed twice''
      (withNginx { site.locations = www.locations ++ www.locations; });
    nginxDirectiveName = bad ''services.nginxHa.nginx.sites.www.extraDirectives.0.name: "Add-Header" is not a directive name''
      (directive { name = "Add-Header"; args = [ "X" "y" ]; });
    nginxDirectiveBrace = bad ''services.nginxHa.nginx.sites.www.extraDirectives.0.args.0: "10m}" contains "}"''
      (directive { name = "client_max_body_size"; args = [ "10m}" ]; });
    nginxStatusNotLoopback = bad "services.nginxHa.nginx.statusPage.listen: 192.0.2.11:8081 is not a loopback IP:PORT"
      (withNginx { extra.nginx.statusPage.listen = "192.0.2.11:8081"; });
    nginxStatusUrlMismatch = bad ''services.nginxHa.checks.nginx.statusUrl: "http://127.0.0.1:8081/nginx_status" does not match nginx.statusPage (http://127.0.0.1:8082/nginx_status)''
      (withNginx { extra.nginx.statusPage.listen = "127.0.0.1:8082"; });
    nginxStatusPageOffButChecked = bad "services.nginxHa.checks.nginx.statusUrl: the nginx check probes stub_status, but nginx.statusPage.enable is false"
      (withNginx { extra.nginx.statusPage.enable = false; });
    nginxKeyInStore = badModuleOnly "services.nginxHa.nginx.sites.www.tls.keyFile: /nix/store/0000-www.key is in the Nix store"
      (withNginx { site = { tls = tlsFiles // { keyFile = "/nix/store/0000-www.key"; }; }; });
  };
}
