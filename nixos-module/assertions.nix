# Everything `nginx-ha check-config` refuses (src/config/validate.rs) that
# the option types cannot express on their own: rules across fields,
# defaults and instances. Each message starts with the option path, so the
# NixOS "Failed assertions" list reads like check-config's output. The
# build-time check-config run stays as the backstop for anything missed
# here (e.g. the full IPv6 grammar).
{ lib, nhLib }:
cfg:
let
  inherit (lib) concatLists mapAttrsToList imap0 optional optionals;
  inherit (nhLib) toMicros orDefault daemonDefaults;
  d = daemonDefaults;
  p = "services.nginxHa";

  check = cond: message: { assertion = cond; inherit message; };

  second = 1000000;
  ms = 1000;

  checkNames = [ "nginx" ] ++ builtins.attrNames cfg.checks.extra;
  nginxCheckOn = orDefault cfg.checks.nginx.enable d.checks.enable;

  addr = v: (nhLib.splitPrefix v).addr;

  instance = name: inst:
    let
      at = "${p}.instances.${name}";
      version = orDefault inst.version d.version;
      vipAddrs = map addr inst.virtualIps;
      v4 = nhLib.isIPv4 (builtins.head vipAddrs);
      fam = if v4 then "IPv4" else "IPv6";
      prio = orDefault inst.priority cfg.node.priority;
      prioPath = if inst.priority != null then "${at}.priority" else "${p}.node.priority";
      owner = orDefault inst.addressOwner d.addressOwner;
      ai = orDefault inst.advertInterval d.advertInterval;
      aiUs = toMicros ai;
      sameFamily = a: nhLib.isIPv4 a == v4;
    in
    [
      (check (nhLib.isSafeName name)
        "${at}: instance names must be 1-64 characters of letters, digits, '-' and '_'")
      (check (!(owner && inst.priority != null && inst.priority != 255))
        "${prioPath}: ${toString prio}: an address owner always has priority 255 (RFC 5798 §5.2.4); drop the override")
      (check (owner || prio != 255)
        "${prioPath}: 255 is reserved for the address owner; set addressOwner = true or use 1..254")
      (check (!(version == 2 && !v4))
        "${at}.version: VRRPv2 (RFC 3768) is IPv4 only; use version 3 for IPv6")
      (check (version != 2 || (lib.mod aiUs second == 0 && aiUs > 0 && aiUs <= 255 * second))
        "${at}.advertInterval: ${ai}: VRRPv2 carries whole seconds 1..255 (RFC 3768 §5.3.7); use version 3 for sub-second adverts")
      (check (version != 3 || (lib.mod aiUs (10 * ms) == 0 && aiUs > 0 && aiUs <= 40950 * ms))
        "${at}.advertInterval: ${ai}: VRRPv3 carries centiseconds 1..4095 (RFC 5798 §5.2.7): use a multiple of 10ms up to 40.95s")
      (check (toMicros (orDefault inst.preemptDelay d.preemptDelay) <= 3600 * second)
        "${at}.preemptDelay: is more than 1h")
      (check (inst.unicastSource == null || sameFamily inst.unicastSource)
        "${at}.unicastSource: ${toString inst.unicastSource} is ${nhLib.family (toString inst.unicastSource)} but the virtual IPs are ${fam}")
      (check (inst.unicastSource == null || inst.unicastPeers != [ ])
        "${at}.unicastSource: is set but unicastPeers is empty; list the peers (or drop unicastSource for multicast)")
      (check (inst.authPasswordFile == null || version == 2)
        "${at}.authPasswordFile: VRRPv3 has no authentication (RFC 5798 §9); remove it or use version 2")
      (check (inst.authPasswordFile == null || nhLib.isSafeAbsPath inst.authPasswordFile)
        "${at}.authPasswordFile: must be an absolute path without \"..\"")
      # Not a daemon rule but the point of the option: a password under
      # /nix/store is world-readable on every machine that has the closure.
      (check (inst.authPasswordFile == null || !(lib.hasPrefix builtins.storeDir (toString inst.authPasswordFile)))
        "${at}.authPasswordFile: ${toString inst.authPasswordFile} is in the Nix store, which is world-readable; give a run-time path (agenix, sops-nix or a deployed file), as a string, not a Nix path literal")
      (check (!(orDefault inst.v3ChecksumAsV2 d.v3ChecksumAsV2) || (version == 3 && v4))
        "${at}.v3ChecksumAsV2: only applies to VRRPv3 over IPv4")
      (check (toMicros (orDefault inst.announce.delay d.announce.delay) <= 10 * second)
        "${at}.announce.delay: is more than 10s")
    ]
    ++ imap0
      (i: vip:
        let a = addr vip; in
        check
          (sameFamily a && !(nhLib.isUnspecified a || nhLib.isMulticast a || nhLib.isLoopback a)
          && !(builtins.elem a (lib.take i vipAddrs)))
          "${at}.virtualIps.${toString i}: ${vip} ${
            if !sameFamily a then "is ${nhLib.family a} but the first virtual IP is ${fam}; one instance carries one family (use a second instance)"
            else if builtins.elem a (lib.take i vipAddrs) then "is listed twice"
            else "cannot be a virtual IP"}")
      inst.virtualIps
    ++ imap0
      (i: peer:
        check
          (sameFamily peer && !(nhLib.isUnspecified peer || nhLib.isMulticast peer)
          && !(builtins.elem peer (lib.take i inst.unicastPeers))
          && !(builtins.elem peer vipAddrs))
          "${at}.unicastPeers.${toString i}: ${peer} ${
            if !sameFamily peer then "is ${nhLib.family peer} but the virtual IPs are ${fam}"
            else if builtins.elem peer (lib.take i inst.unicastPeers) then "is listed twice"
            else if builtins.elem peer vipAddrs then "is a virtual IP; peers are the nodes' own addresses"
            else "cannot be a unicast peer"}")
      inst.unicastPeers
    ++ optionals (inst.trackChecks != null) (imap0
      (i: c:
        check (builtins.elem c checkNames && !(c == "nginx" && !nginxCheckOn))
          "${at}.trackChecks.${toString i}: ${
            if builtins.elem c checkNames then "tracks the nginx check, but checks.nginx.enable is false"
            else "\"${c}\" is not a check (known: ${lib.concatStringsSep ", " checkNames})"}")
      inst.trackChecks);

  # RFC 5798 §7.3: one VRID per LAN and family; two instances on one
  # interface with the same VRID and family would take each other's adverts.
  vridKey = inst: "${inst.interface}/${toString inst.virtualRouterId}/${nhLib.family (addr (builtins.head inst.virtualIps))}";
  vridClashes =
    let
      names = builtins.attrNames cfg.instances;
      firstWith = key: lib.findFirst (n: vridKey cfg.instances.${n} == key) null names;
    in
    concatLists (map
      (n:
        let
          inst = cfg.instances.${n};
          first = firstWith (vridKey inst);
        in
        optional (first != n)
          (check false "${p}.instances.${n}.virtualRouterId: ${toString inst.virtualRouterId} is already used by instance \"${first}\" on ${inst.interface} for ${nhLib.family (addr (builtins.head inst.virtualIps))}"))
      names);

  timing = at: c: [
    (check
      (let t = toMicros (orDefault c.interval d.checks.interval); in t >= 10 * ms && t <= 3600 * second)
      "${at}.interval: must be between 10ms and 1h")
    (check
      (
        let
          t = toMicros (orDefault c.timeout d.checks.timeout);
          i = toMicros (orDefault c.interval d.checks.interval);
        in
        t > 0 && t <= i
      )
      "${at}.timeout: must be more than 0 and at most the interval")
  ];

  httpUrl = at: url:
    check (nhLib.parseHttpUrl url != null)
      "${at}: \"${url}\" must be http://HOST[:PORT]/PATH with HOST an IP address or localhost (no DNS in health checks)";

  extraCheck = name: c:
    let
      at = "${p}.checks.extra.${name}";
      misplaced = field: optional (c.${field} != null)
        (check false "${at}.${field}: does not apply to a ${c.type} check");
      required = field: check (c.${field} != null) "${at}.${field}: is required for a ${c.type} check";
    in
    [
      (check (nhLib.isSafeName name && name != "nginx")
        "${at}: check names must be 1-64 characters of letters, digits, '-' and '_', and not \"nginx\"")
    ]
    ++ timing at c
    ++ {
      http = [ (required "url") ] ++ optional (c.url != null) (httpUrl "${at}.url" c.url)
      ++ misplaced "address" ++ misplaced "command";
      tcp = [ (required "address") ]
      ++ optional (c.address != null) (check
        (
          let m = builtins.match "(\\[(.*)]|([^:]*)):([0-9]{1,5})" c.address; in
          m != null && (nhLib.isIPv4 (builtins.elemAt m 2) || nhLib.isIPv6 (builtins.elemAt m 1))
        )
        "${at}.address: \"${c.address}\" is not ADDRESS:PORT (e.g. 127.0.0.1:443 or [::1]:443)")
      ++ misplaced "url" ++ misplaced "expectStatus" ++ misplaced "command";
      exec = [ (required "command") ]
      ++ optionals (c.command != null) (argv "${at}.command" c.command)
      ++ misplaced "url" ++ misplaced "expectStatus" ++ misplaced "address";
    }.${c.type};

  argv = at: cmd: [
    (check (nhLib.isSafeAbsPath (builtins.head cmd))
      "${at}.0: \"${builtins.head cmd}\" must be an absolute path without \"..\" (e.g. \"\${pkgs.foo}/bin/foo\")")
  ];

  notifyTimeout = toMicros (orDefault cfg.notify.timeout d.notifyTimeout);
in
[
  (check (cfg.instances != { }) "${p}.instances: at least one VRRP instance is needed")
  (check (notifyTimeout > 0 && notifyTimeout <= 600 * second)
    "${p}.notify.timeout: must be more than 0 and at most 10m")
]
++ concatLists (mapAttrsToList instance cfg.instances)
++ vridClashes
++ optionals nginxCheckOn (
  timing "${p}.checks.nginx" cfg.checks.nginx
  ++ [ (httpUrl "${p}.checks.nginx.statusUrl" (orDefault cfg.checks.nginx.statusUrl d.checks.statusUrl)) ]
)
++ concatLists (mapAttrsToList extraCheck cfg.checks.extra)
++ import ./nginx-assertions.nix { inherit lib nhLib; } cfg
++ concatLists (map
  (event: concatLists (imap0 (i: argv "${p}.notify.${event}.${toString i}") cfg.notify.${event}))
  [ "master" "backup" "fault" "stop" ])
