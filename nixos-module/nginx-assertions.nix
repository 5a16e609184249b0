# The rules `nginx-ha check-config` applies to the nginx part of the
# declaration (src/config/nginx/check.rs, token.rs) that are cheap to
# mirror: names, references to upstreams, the combinations of fields, and
# the characters that would change the rendered config's structure. Each
# message starts with the option path. What is left to check-config (it
# runs on the generated JSON at build time): conflicts between sites that
# share a socket (TLS or HTTP/2 on one side only, two default servers, one
# server name on two sites), the directives the escape hatch refuses, and
# the full host-name/IPv6 grammar in addresses.
{ lib, nhLib }:
cfg:
let
  inherit (lib) concatLists mapAttrsToList imap0 optional optionals;
  inherit (nhLib) orDefault isSafeName;
  p = "services.nginxHa.nginx";
  n = cfg.nginx;

  check = cond: message: { assertion = cond; inherit message; };
  # For a checker that returns null (fine) or the problem.
  problem = at: found: check (found == null) "${at}: ${toString found}";

  show = builtins.toJSON;

  # token::check_value: nothing that ends a directive, opens a block,
  # starts a comment or changes quoting; whitespace and `$` only where
  # allowed.
  refused = {
    ";" = "';' would end the nginx directive";
    "{" = "braces would open or close an nginx block";
    "}" = "braces would open or close an nginx block";
    "\"" = "quotes would change how nginx splits the value";
    "'" = "quotes would change how nginx splits the value";
    "#" = "'#' would start an nginx comment";
    "\\" = "'\\' is an nginx escape character";
    "\n" = "a line break would start a new directive";
    "\r" = "a line break would start a new directive";
  };
  isControl = c: builtins.match "[[:cntrl:]]" c != null;
  token = { vars ? false, spaces ? false }: s:
    let
      bad = lib.findFirst (c: refused ? ${c} || isControl c) null (lib.stringToCharacters s);
    in
    if s == "" then "must not be empty"
    else if builtins.stringLength s > 1024 then "is longer than 1024 bytes"
    else if bad != null then "${show s} contains ${show bad}: ${refused.${bad} or "control characters are not allowed"}"
    else if !spaces && lib.hasInfix " " s then "${show s} contains whitespace, which would split it into two nginx arguments"
    else if !vars && lib.hasInfix "$" s then "${show s} contains '$', which nginx would read as a variable here"
    else if vars && builtins.match ".*[$]([^A-Za-z0-9_].*)?" s != null then "${show s}: '$' must start a variable name such as $host"
    else null;

  uriPath = s:
    let t = token { } s; in
    if t != null then t
    else if !(lib.hasPrefix "/" s) then "${show s} must start with '/'"
    else if lib.hasInfix "?" s then "${show s}: nginx matches locations without the query string, so '?' would never match"
    else null;

  confPath = token { };

  # token::check_server_name: a host name, optionally `*.`/`.` in front or
  # `.*` at the end; no regexes.
  label = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
  hostName = "${label}(\\.${label})*";
  serverName = s:
    if lib.hasPrefix "~" s then "${show s}: regex server names are not supported"
    else if builtins.stringLength s > 255
      || builtins.match "((\\*\\.|\\.)?${hostName})|(${hostName}\\.\\*)" s == null
    then "${show s} is not a host name (letters, digits, '-' and '.', optionally \"*.\" or \".\" in front)"
    else null;

  # IP:PORT, [IPv6]:PORT, HOST:PORT or unix:/PATH.
  serverAddress = a:
    let
      t = token { } a;
      path = lib.removePrefix "unix:" a;
      m = builtins.match "(\\[[0-9a-fA-F:.]+]|[A-Za-z0-9.-]+):([0-9]{1,5})" a;
      port = lib.toIntBase10 (builtins.elemAt m 1);
    in
    if t != null then t
    else if lib.hasPrefix "unix:" a then
      (if nhLib.isSafeAbsPath path then null
      else "${show a}: the socket path must be absolute, without \"..\"")
    else if m == null || port < 1 || port > 65535 then
      "${show a} is not IP:PORT, [IPv6]:PORT, HOST:PORT or unix:/PATH (write e.g. 198.51.100.10:80)"
    else null;

  upstream = name: up:
    let
      at = "${p}.upstreams.${name}";
      method = orDefault up.method "roundRobin";
      allowsBackup = method == "roundRobin" || method == "leastConn";
      addrs = map (s: s.address) up.servers;
    in
    [
      (check (isSafeName name)
        "${at}: upstream names must be 1-64 characters of letters, digits, '-' and '_'")
      (check (!(lib.all (s: orDefault s.backup false) up.servers))
        "${at}.servers: every server is a backup; at least one must be primary")
    ]
    ++ optional (builtins.isAttrs method)
      (problem "${at}.method.hash.key" (token { vars = true; } method.hash.key))
    ++ concatLists (imap0
      (i: s:
        let
          sp = "${at}.servers.${toString i}";
          backup = orDefault s.backup false;
          t = if s.failTimeout == null then null else nhLib.toMicros s.failTimeout;
        in
        [
          (problem "${sp}.address" (serverAddress s.address))
          (check (!(builtins.elem s.address (lib.take i addrs)))
            "${sp}.address: ${show s.address} is listed twice")
          (check (t == null || (lib.mod t 1000000 == 0 && t > 0 && t <= 3600 * 1000000))
            "${sp}.failTimeout: ${toString s.failTimeout}: nginx takes whole seconds here, 1s..=1h")
          (check (!backup || allowsBackup)
            "${sp}.backup: nginx does not support backup servers with ipHash, hash or random")
          (check (!(backup && orDefault s.down false))
            "${sp}.down: a server cannot be both backup and down")
        ])
      up.servers);

  directives = at: ds:
    concatLists (imap0
      (i: d:
        let dp = "${at}.${toString i}"; in
        [
          (check (builtins.match "[a-z][a-z0-9_]{0,63}" d.name != null)
            "${dp}.name: ${show d.name} is not a directive name (lower-case letters, digits and '_')")
          (check (builtins.length d.args <= 16) "${dp}.args: at most 16 arguments")
        ]
        ++ imap0 (j: a: problem "${dp}.args.${toString j}" (token { vars = true; spaces = true; } a)) d.args)
      ds);

  isRedirect = s: builtins.elem s [ 301 302 303 307 308 ];

  # check_proxy_pass: a known upstream, or an http(s) URL; an upstream in
  # a URL takes no port.
  proxyPass = pp:
    let
      t = token { } pp;
      known = builtins.attrNames n.upstreams;
      url = builtins.match "([^:/]*)://(\\[[^]]*]|[^/:]*)(:[^/]*)?(/.*)?" pp;
      scheme = builtins.elemAt url 0;
      host = builtins.elemAt url 1;
      port = builtins.elemAt url 2;
      path = builtins.elemAt url 3;
    in
    if t != null then t
    else if !(lib.hasInfix "://" pp) then
      (if n.upstreams ? ${pp} then null
      else "${show pp} is not an upstream (known: ${if known == [ ] then "none" else lib.concatStringsSep ", " known}) nor a URL (http://HOST[:PORT][/PATH])")
    else if url == null || !(scheme == "http" || scheme == "https") then "${show pp}: the scheme must be http or https"
    else if path != null && lib.hasInfix "?" path then "${show pp}: proxyPass cannot carry a query string"
    else if n.upstreams ? ${host} && port != null then "${show pp}: \"${host}\" is an upstream; drop the port (the servers carry it)"
    else null;

  location = at: loc:
    let
      set = builtins.length (builtins.filter (x: x != null) [ loc.proxyPass loc.root loc.return ]);
      r = loc.return;
    in
    [
      (problem "${at}.path" (uriPath loc.path))
      (check (set == 1)
        "${at}: set exactly one of proxyPass, root and return (what the location serves)")
      (check (!(orDefault loc.websockets false) || loc.proxyPass != null)
        "${at}.websockets: only applies with proxyPass")
    ]
    ++ optional (loc.proxyPass != null) (problem "${at}.proxyPass" (proxyPass loc.proxyPass))
    ++ optional (loc.root != null) (problem "${at}.root" (confPath loc.root))
    ++ optionals (r != null) [
      (check (r.target != null || !(isRedirect r.status))
        "${at}.return.target: a ${toString r.status} redirect needs a target URL")
      (problem "${at}.return.target" (
        if r.target == null then null
        else
          let t = token { vars = true; spaces = true; } r.target; in
          if t != null then t
          else if isRedirect r.status && !(lib.hasPrefix "http://" r.target || lib.hasPrefix "https://" r.target || lib.hasPrefix "/" r.target)
          then "${show r.target} must be a URL (http://, https:// or /path)"
          else if isRedirect r.status && lib.hasInfix " " r.target then "a URL cannot contain spaces"
          else null
      ))
    ]
    ++ directives "${at}.extraDirectives" loc.extraDirectives;

  site = name: s:
    let
      at = "${p}.sites.${name}";
      listen = orDefault s.listen [ ];
      lower = map lib.toLower s.serverNames;
      keyOf = l: "${toString l.address}/${toString l.port}";
      locKey = loc: "${orDefault loc.match "prefix"} ${loc.path}";
    in
    [
      (check (isSafeName name)
        "${at}: site names must be 1-64 characters of letters, digits, '-' and '_'")
      (check (s.tls == null || lib.any (l: orDefault l.ssl false) (nhLib.nginx.effectiveListen s))
        "${at}.listen: the site has tls but no listen entry with ssl = true")
    ]
    ++ imap0
      (i: sn:
        let bad = serverName sn; in
        check (bad == null && !(builtins.elem (lib.toLower sn) (lib.take i lower)))
          "${at}.serverNames.${toString i}: ${if bad != null then bad else "${show sn} is listed twice"}")
      s.serverNames
    ++ concatLists (imap0
      (i: l:
        let lp = "${at}.listen.${toString i}"; in
        [
          (check (l.address == null || !(nhLib.isMulticast l.address || l.address == "255.255.255.255"))
            "${lp}.address: ${toString l.address} cannot be listened on")
          (check (!(orDefault l.ssl false) || s.tls != null)
            "${lp}.ssl: needs the site's tls (certificate and key)")
          (check (!(builtins.elem (keyOf l) (map keyOf (lib.take i listen))))
            "${lp}: this address and port is listed twice")
        ])
      listen)
    ++ optionals (s.tls != null) [
      (problem "${at}.tls.certificateFile" (confPath s.tls.certificateFile))
      (problem "${at}.tls.keyFile" (confPath s.tls.keyFile))
      # Not a daemon rule: a key under /nix/store is world-readable.
      (check (!(lib.hasPrefix builtins.storeDir (toString s.tls.keyFile)))
        "${at}.tls.keyFile: ${toString s.tls.keyFile} is in the Nix store, which is world-readable; give a run-time path (agenix, sops-nix or a deployed file) as a string")
    ]
    ++ concatLists (imap0
      (i: loc:
        let lp = "${at}.locations.${toString i}"; in
        location lp loc
        ++ [
          (check (!(builtins.elem (locKey loc) (map locKey (lib.take i s.locations))))
            "${lp}.path: ${show loc.path} is listed twice (nginx: duplicate location)")
        ])
      s.locations)
    ++ directives "${at}.extraDirectives" s.extraDirectives;

  # The status page, and whether the nginx check probes it (check_status_url).
  sp = n.statusPage;
  spOn = orDefault sp.enable true;
  spListen = orDefault sp.listen "127.0.0.1:8081";
  spPath = orDefault sp.path "/nginx_status";
  spMatch =
    let v6 = builtins.match "\\[([^]]*)]:([0-9]{1,5})" spListen; in
    if v6 != null then v6 else builtins.match "([0-9.]+):([0-9]{1,5})" spListen;
  spHost = builtins.elemAt spMatch 0;
  spPort = lib.toIntBase10 (builtins.elemAt spMatch 1);

  declared = cfg.declaration ? nginx;
  statusUrl = orDefault cfg.checks.nginx.statusUrl nhLib.daemonDefaults.checks.statusUrl;
  url = nhLib.parseHttpUrl statusUrl;
  urlHost = if url.host == "localhost" then "127.0.0.1" else url.host;
  nginxCheckOn = orDefault cfg.checks.nginx.enable nhLib.daemonDefaults.checks.enable;
in
concatLists (mapAttrsToList upstream n.upstreams)
++ concatLists (mapAttrsToList site n.sites)
++ optionals spOn [
  (check (spMatch != null && nhLib.isLoopback spHost && spPort >= 1 && spPort <= 65535)
    "${p}.statusPage.listen: ${spListen} is not a loopback IP:PORT; the status page is for the local health check only")
  (problem "${p}.statusPage.path" (uriPath spPath))
]
++ optionals (declared && nginxCheckOn && url != null && spMatch != null) [
  (check spOn
    "services.nginxHa.checks.nginx.statusUrl: the nginx check probes stub_status, but nginx.statusPage.enable is false")
  (check (!spOn || (nhLib.normalizeIp urlHost == nhLib.normalizeIp spHost && url.port == spPort && url.path == spPath))
    "services.nginxHa.checks.nginx.statusUrl: ${show statusUrl} does not match nginx.statusPage (http://${spListen}${spPath})")
]
