# services.nginxHa.nginx: the `nginx` part of the declaration (upstreams,
# sites, status page) that `nginx-ha render-nginx` turns into nginx config.
# Mirrors src/config/nginx.rs field by field; option names are the JSON
# keys. Options left at null are left out of the JSON and take the daemon's
# default, which the description states. Rules across fields are in
# nginx-assertions.nix; `nginx-ha check-config` at build time has the last
# word.
{ lib, nhLib, optional }:
let
  inherit (lib) mkOption types literalExpression;
  nh = nhLib.types;

  # A path written into nginx's config: absolute, no "..".
  confPath = nh.absolutePath;

  methodType = types.either
    (types.enum [ "roundRobin" "leastConn" "ipHash" "random" ])
    (types.submodule {
      options.hash = mkOption {
        description = "Hash load balancing (`hash KEY [consistent]`).";
        type = types.submodule {
          options = {
            key = mkOption {
              type = types.str;
              example = "$request_uri";
              description = "Text with nginx variables to hash, e.g. `$request_uri` or `$remote_addr`; no spaces.";
            };
            consistent = optional types.bool false
              "Ketama consistent hashing (fewer keys move when a server is added or removed)."
              { example = true; };
          };
        };
      };
    }) // {
    description = ''one of "roundRobin", "leastConn", "ipHash", "random", or { hash = { key; consistent; }; }'';
  };

  directiveModule = {
    options = {
      name = mkOption {
        type = types.str;
        example = "client_max_body_size";
        description = "Directive name: lower-case letters, digits and `_`. Block directives, `include` and the directives the renderer writes itself are refused by check-config.";
      };
      args = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "10m" ];
        description = "Arguments (at most 16). Spaces (then quoted) and nginx variables are allowed; `;`, braces, quotes, `#`, `\\` and control characters are not.";
      };
    };
  };

  extraDirectives = level: mkOption {
    type = types.listOf (types.submodule directiveModule);
    default = [ ];
    example = literalExpression ''[ { name = "client_max_body_size"; args = [ "10m" ]; } ]'';
    description = ''
      ${level}-level escape hatch: simple directives `name args...;`, written
      in order. A directive nginx allows once per block may be given once.
    '';
  };

  serverModule = {
    options = {
      address = mkOption {
        type = types.str;
        example = "198.51.100.10:80";
        description = "`IP:PORT`, `[IPv6]:PORT`, `HOST:PORT` (resolved once, when nginx loads the config) or `unix:/ABSOLUTE/PATH`.";
      };
      weight = optional (types.ints.between 1 1000) null
        "Relative weight. Unset: nginx's default, 1."
        { example = 2; };
      maxFails = optional (types.ints.between 0 1000) null
        "Failed attempts within `failTimeout` before the server is considered unavailable; 0 disables the accounting. Unset: nginx's default, 1."
        { example = 3; };
      failTimeout = optional nh.duration null
        "Whole seconds, 1s..1h. Unset: nginx's default, 10s."
        { example = "30s"; };
      backup = optional types.bool false
        "Only used when the primary servers are unavailable (roundRobin and leastConn only)."
        { example = true; };
      down = optional types.bool false
        "Marked permanently unavailable."
        { example = true; };
    };
  };

  upstreamModule = { name, ... }: {
    options = {
      servers = mkOption {
        type = types.nonEmptyListOf (types.submodule serverModule);
        example = literalExpression ''[ { address = "198.51.100.31:8000"; weight = 2; } { address = "198.51.100.33:8000"; backup = true; } ]'';
        description = "The servers of upstream `${name}`; at least one that is not a backup.";
      };
      method = optional methodType "roundRobin"
        ''Load-balancing method: `"roundRobin"`, `"leastConn"`, `"ipHash"`, `"random"` or `{ hash = { key = "$request_uri"; consistent = true; }; }`.''
        { example = "leastConn"; };
      keepalive = optional (types.ints.between 1 10000) null
        "Idle keepalive connections cached per worker (`keepalive N`). Proxied locations then speak HTTP/1.1 with an empty Connection header. Unset: off."
        { example = 32; };
    };
  };

  listenModule = {
    options = {
      address = optional nh.ipAddress null
        ''
          Unset: every address of both families (`listen PORT` and
          `listen [::]:PORT`); use `0.0.0.0` on hosts without IPv6. A virtual
          IP here makes the module set `ip_nonlocal_bind` for its family
          (`nginx.nonlocalBind`), so nginx also starts on the backup.
        ''
        { example = "192.0.2.100"; };
      port = mkOption {
        type = types.ints.between 1 65535;
        example = 443;
        description = "TCP port.";
      };
      ssl = optional types.bool false
        "TLS on this socket; needs the site's `tls`."
        { example = true; };
      defaultServer = optional types.bool false
        "This site answers requests whose Host matches no site on this socket (instead of the 444 catch-all)."
        { example = true; };
    };
  };

  tlsModule = {
    options = {
      certificateFile = mkOption {
        type = confPath;
        example = "/run/agenix/www.crt";
        description = "Certificate chain (PEM), as a run-time path: nginx reads it, the declaration only names it.";
      };
      keyFile = mkOption {
        type = confPath;
        example = literalExpression "config.age.secrets.www-key.path";
        description = "Private key, as a run-time path readable by user nginx (never in the Nix store).";
      };
      redirectHttp = optional types.bool true
        "The site's plain-HTTP listen lines only redirect (301) to HTTPS."
        { example = false; };
      hsts = optional types.bool false
        "Send `Strict-Transport-Security: max-age=63072000` (two years); browsers then refuse plain HTTP for that long."
        { example = true; };
      http2 = optional types.bool false
        "HTTP/2 on the TLS sockets."
        { example = true; };
      ocspStapling = optional types.bool false
        "`ssl_stapling` with verification."
        { example = true; };
    };
  };

  returnModule = {
    options = {
      status = mkOption {
        type = types.addCheck types.int (s: (s >= 200 && s <= 599) || s == 444) // {
          description = "HTTP status 200..599, or 444 (close without a reply)";
        };
        example = 301;
        description = "Status code.";
      };
      target = optional types.str null
        "For 301/302/303/307/308 the URL to redirect to (required; `http://`, `https://` or `/path`), otherwise an optional body. nginx variables allowed."
        { example = "https://example.com$request_uri"; };
    };
  };

  locationModule = {
    options = {
      path = mkOption {
        type = types.str;
        example = "/api/";
        description = "URI path, starting with `/`; no query, whitespace or variables.";
      };
      match = optional (types.enum [ "prefix" "exact" ]) "prefix"
        "`prefix`: `location /path`; `exact`: `location = /path`."
        { example = "exact"; };
      proxyPass = optional types.str null
        "An upstream name (`\"app\"`, proxied as `http://app`), or a URL `http(s)://HOST[:PORT][/PATH]` whose HOST may be an upstream name. Exactly one of `proxyPass`, `root` and `return`."
        { example = "app"; };
      root = optional confPath null
        "Serve static files from this directory."
        { example = "/srv/www"; };
      return = optional (types.submodule returnModule) null
        "`return STATUS [TARGET]`."
        { example = literalExpression ''{ status = 301; target = "https://example.com$request_uri"; }''; };
      websockets = optional types.bool false
        "Pass WebSocket upgrades through (with `proxyPass` only)."
        { example = true; };
      extraDirectives = extraDirectives "Location";
    };
  };

  siteModule = { name, ... }: {
    options = {
      serverNames = mkOption {
        type = types.nonEmptyListOf types.str;
        example = [ "www.example.com" "example.com" ];
        description = "`server_name` of site `${name}`: the first is the primary name, the rest are aliases. Exact names, `*.example.com` or `.example.com`; no regexes.";
      };
      listen = optional (types.listOf (types.submodule listenModule)) null
        "Where the site listens. Unset: port 80 on every IPv4 and IPv6 address; with `tls`, port 443 (TLS) plus port 80 (which then only redirects, see `tls.redirectHttp`)."
        { example = literalExpression ''[ { address = "192.0.2.100"; port = 443; ssl = true; } { address = "192.0.2.100"; port = 80; } ]''; };
      locations = mkOption {
        type = types.nonEmptyListOf (types.submodule locationModule);
        example = literalExpression ''[ { path = "/"; proxyPass = "app"; } { path = "/static/"; root = "/srv/app"; } ]'';
        description = "The `location` blocks, in order; each sets exactly one of `proxyPass`, `root` and `return`.";
      };
      tls = optional (types.submodule tlsModule) null
        "TLS certificate and settings. Unset: plain HTTP only."
        {
          example = literalExpression ''
            {
              certificateFile = "/run/agenix/www.crt";
              keyFile = config.age.secrets.www-key.path;
              hsts = true;
            }
          '';
        };
      extraDirectives = extraDirectives "Server";
    };
  };
in
{
  upstreams = mkOption {
    type = types.attrsOf (types.submodule upstreamModule);
    default = { };
    example = literalExpression ''
      {
        app = {
          method = "leastConn";
          servers = [
            { address = "198.51.100.31:8000"; weight = 2; }
            { address = "198.51.100.32:8000"; }
            { address = "198.51.100.33:8000"; backup = true; }
          ];
          keepalive = 32;
        };
      }
    '';
    description = "`upstream NAME { ... }` blocks by name (letters, digits, `-`, `_`), referenced from `locations.*.proxyPass`.";
  };

  sites = mkOption {
    type = types.attrsOf (types.submodule siteModule);
    default = { };
    example = literalExpression ''
      {
        app = {
          serverNames = [ "app.example.com" ];
          locations = [
            { path = "/"; proxyPass = "app"; }
            { path = "/ws/"; proxyPass = "app"; websockets = true; }
            { path = "/static/"; root = "/srv/app"; }
          ];
        };
      }
    '';
    description = "One `server { ... }` (plus its HTTP redirect, if any) per site, by name (letters, digits, `-`, `_`).";
  };

  statusPage = {
    enable = optional types.bool true
      "Render the loopback stub_status listener the built-in health check probes. When the declaration's nginx part is rendered it serves `checks.nginx.statusUrl`, so the two must agree."
      { example = false; };
    listen = optional (types.strMatching "(\\[[0-9a-fA-F:.]+]|[0-9.]+):[0-9]{1,5}") "127.0.0.1:8081"
      "Loopback socket, `IP:PORT` or `[IPv6]:PORT`."
      { example = "127.0.0.1:8081"; };
    path = optional types.str "/nginx_status"
      "URI path of the status page."
      { example = "/nginx_status"; };
  };

  defaultServer = optional types.bool true
    "A catch-all `default_server` on every socket the sites use that closes connections for unknown Host headers (444), so a request for a name no site serves never lands on the first site."
    { example = false; };
}
