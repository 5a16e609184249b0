# Helpers of services.nginxHa: the option types behind the schema's string
# formats, and what the NixOS wiring derives from the options (sysctls,
# firewall ports). Only nixpkgs `lib` is needed.
{ lib }:
let
  digits = s:
    lib.foldl' (acc: c: acc * 10 + (lib.strings.charToInt c - 48)) 0
      (lib.stringToCharacters s);

  pow10 = n: if n == 0 then 1 else 10 * pow10 (n - 1);

  microsPerUnit = {
    us = 1;
    "µs" = 1;
    ms = 1000;
    s = 1000000;
    m = 60000000;
    min = 60000000;
    h = 3600000000;
  };

  # The daemon's duration syntax (crates/core/src/config/duration.rs). The integer part
  # is capped at 9 digits, a little stricter than the daemon's 12, so the
  # arithmetic below stays inside Nix' 64-bit integers (999999999h fits).
  durationRegex = "([0-9]{1,9})(\\.([0-9]{1,9}))?(us|µs|ms|s|m|min|h)";

  ipv4Octet = "(0|[1-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5])";
  ipv4Regex = "${ipv4Octet}\\.${ipv4Octet}\\.${ipv4Octet}\\.${ipv4Octet}";
  # Loose on purpose: the exact IPv6 grammar is enforced by check-config at
  # build time; this only catches typos early with the option's name.
  ipv6Regex = "[0-9a-fA-F:.]*:[0-9a-fA-F:.]*";
in
rec {
  # Microseconds for a duration string, or null when it is not one (or is
  # finer than a microsecond, which the daemon refuses too).
  toMicros = s:
    let
      m = builtins.match durationRegex s;
      int = digits (builtins.elemAt m 0);
      frac = builtins.elemAt m 2;
      unit = microsPerUnit.${builtins.elemAt m 3};
      fracScaled = if frac == null then 0 else digits frac * unit;
      scale = if frac == null then 1 else pow10 (builtins.stringLength frac);
    in
    if !(builtins.isString s) || m == null then null
    else if lib.mod fracScaled scale != 0 then null
    else int * unit + fracScaled / scale;

  isIPv4 = s: builtins.isString s && builtins.match ipv4Regex s != null;
  isIPv6 = s:
    builtins.isString s
    && builtins.match ipv6Regex s != null
    && builtins.stringLength s <= 45
    && !(lib.hasInfix ":::" s)
    && builtins.length (lib.splitString "::" s) <= 2;
  isIP = s: isIPv4 s || isIPv6 s;

  # "192.0.2.10/24" -> { addr = "192.0.2.10"; len = 24; }, or null.
  splitPrefix = s:
    let m = builtins.match "([^/]+)/([0-9]{1,3})" s;
    in if !(builtins.isString s) || m == null then null else {
      addr = builtins.elemAt m 0;
      len = digits (builtins.elemAt m 1);
    };

  isPrefix = s:
    let p = splitPrefix s;
    in p != null && (
      (isIPv4 p.addr && p.len <= 32) || (isIPv6 p.addr && p.len <= 128)
    );

  # Addresses that can be neither a VIP nor a peer. IPv6 is compared on the
  # usual spellings only; check-config sees every other spelling.
  isUnspecified = a: a == "0.0.0.0" || a == "::";
  isMulticast = a:
    if isIPv4 a then
      let o = digits (builtins.head (lib.splitString "." a)); in o >= 224 && o <= 239
    else lib.hasPrefix "ff" (lib.toLower a);
  isLoopback = a: lib.hasPrefix "127." a || a == "::1";

  family = a: if isIPv4 a then "IPv4" else "IPv6";

  # What checks.*.statusUrl/url accept: http://HOST[:PORT][/PATH] with HOST
  # an IP literal or localhost (no DNS inside a health check).
  parseHttpUrl = url:
    let
      m = builtins.match "http://(\\[([^]]*)]|([^/:]*))(:([0-9]{1,5}))?(/[^[:space:]]*)?" url;
      host = if builtins.elemAt m 1 != null then builtins.elemAt m 1 else builtins.elemAt m 2;
      port = if builtins.elemAt m 4 == null then 80 else digits (builtins.elemAt m 4);
      path = if builtins.elemAt m 5 == null then "/" else builtins.elemAt m 5;
    in
    if !(builtins.isString url) || m == null then null
    else if !(host == "localhost" || isIP host) then null
    else if port < 1 || port > 65535 then null
    else { inherit host port path; };

  isSocketAddress = s:
    let m = builtins.match "(\\[([^]]*)]|([0-9.]+)):([0-9]{1,5})" s; in
    builtins.isString s && m != null
    && (if builtins.elemAt m 1 != null then isIPv6 (builtins.elemAt m 1) else isIPv4 (builtins.elemAt m 2))
    && digits (builtins.elemAt m 3) <= 65535;

  isLoopbackHost = h: h == "localhost" || isLoopback h;

  # An absolute path the daemon is allowed to be pointed at.
  isSafeAbsPath = p:
    let s = toString p;
    in lib.hasPrefix "/" s
      && !(builtins.elem ".." (lib.splitString "/" s))
      && builtins.match ".*[[:cntrl:]].*" s == null
      && builtins.stringLength s <= 4096;

  # Names that end up in file names, credential names and log fields.
  isSafeName = s: builtins.match "[A-Za-z0-9_-]{1,64}" s != null;

  # IPv6 in one spelling (lower case, eight groups of four digits), so
  # virtual IPs and listen addresses compare like the daemon's parsed
  # addresses do. IPv4 (no leading zeros allowed) and anything that is
  # not a plain IPv6 address come back unchanged.
  normalizeIp = a:
    let
      s = lib.toLower a;
      halves = lib.splitString "::" s;
      groups = h: if h == "" then [ ] else lib.splitString ":" h;
      pad = g: lib.fixedWidthString 4 "0" g;
      front = groups (builtins.head halves);
      back = if builtins.length halves == 2 then groups (builtins.elemAt halves 1) else [ ];
      fill = 8 - builtins.length front - builtins.length back;
      all = front ++ lib.genList (_: "0") (if builtins.length halves == 2 then fill else 0) ++ back;
    in
    if !(isIPv6 a) || lib.hasInfix "." s || builtins.length all != 8 then a
    else lib.concatMapStringsSep ":" pad all;

  # The nginx part of the declaration (crates/core/src/config/nginx.rs), as the module
  # needs it to derive sysctls and firewall ports. `site` is a site's
  # option value; unset fields are null.
  nginx = rec {
    # Site.effective_listen: the listen lines after defaults.
    effectiveListen = site:
      if site.listen != null && site.listen != [ ] then site.listen
      else if site.tls == null then [{ address = null; port = 80; ssl = null; }]
      else [{ address = null; port = 443; ssl = true; } { address = null; port = 80; ssl = null; }];

    listenAddresses = sites: lib.concatMap
      (site: lib.concatMap (l: lib.optional (l.address != null) l.address) (effectiveListen site))
      (builtins.attrValues sites);

    # listens_on_nonlocal: of the addresses nginx is told to listen on,
    # the virtual IPs, and their families (each needs its
    # ip_nonlocal_bind). `listensOnNonlocal (listenAddresses sites) vips`
    # is the daemon's function.
    listensOnNonlocal = listened: vips:
      let
        vipSet = map normalizeIp vips;
        addresses = lib.unique (builtins.filter (a: builtins.elem (normalizeIp a) vipSet) listened);
      in
      {
        inherit addresses;
        v4 = lib.any isIPv4 addresses;
        v6 = lib.any isIPv6 addresses;
      };

    # TCP ports the sites take connections on; loopback listeners are
    # left out (nothing to open for them).
    ports = sites: lib.sort lib.lessThan (lib.unique (lib.concatMap
      (site: map (l: l.port)
        (builtins.filter (l: l.address == null || !(isLoopback l.address)) (effectiveListen site)))
      (builtins.attrValues sites)));
  };

  types = {
    duration = lib.mkOptionType {
      name = "nginxHaDuration";
      description = ''duration string with a unit (us, ms, s, m, h), e.g. "100ms" or "1.5s"'';
      descriptionClass = "noun";
      check = x: toMicros x != null;
      merge = lib.options.mergeEqualOption;
    };

    ipAddress = lib.mkOptionType {
      name = "nginxHaIpAddress";
      description = "IPv4 or IPv6 address";
      descriptionClass = "noun";
      check = isIP;
      merge = lib.options.mergeEqualOption;
    };

    ipPrefix = lib.mkOptionType {
      name = "nginxHaIpPrefix";
      description = ''IP address with prefix length, e.g. "192.0.2.100/24"'';
      descriptionClass = "noun";
      check = isPrefix;
      merge = lib.options.mergeEqualOption;
    };

    absolutePath = lib.types.addCheck
      (lib.types.strMatching "/.*"
        // { description = ''absolute path without ".." components''; })
      isSafeAbsPath;

    interfaceName = lib.types.addCheck
      # Linux: at most 15 bytes, printable ASCII, no '/' or ':' and not "."
      # or "..".
      (lib.types.strMatching "[!-.0-9;-~]{1,15}")
      (s: s != "." && s != "..");

    safeName = lib.types.strMatching "[A-Za-z0-9_-]{1,64}";

    socketAddress = lib.mkOptionType {
      name = "nginxHaSocketAddress";
      description = ''IP:PORT, IPv6 in brackets, e.g. "127.0.0.1:8081" or "[::1]:8081"'';
      descriptionClass = "noun";
      check = isSocketAddress;
      merge = lib.options.mergeEqualOption;
    };
  };

  # The schema's string formats (crates/core/src/config/schema.rs) as option types.
  formats = {
    duration = types.duration;
    ip = types.ipAddress;
    ip-prefix = types.ipPrefix;
    absolute-path = types.absolutePath;
    interface-name = types.interfaceName;
    name = types.safeName;
    socket-address = types.socketAddress;
  };

  # Drops nulls (unset options) everywhere, so the daemon's own defaults
  # apply, and turns path values into strings so nothing is copied into the
  # store by builtins.toJSON.
  clean = v:
    if builtins.isAttrs v then
      lib.mapAttrs (_: clean) (lib.filterAttrs (_: x: x != null) v)
    else if builtins.isList v then map clean v
    else if builtins.isPath v then toString v
    else v;
}
