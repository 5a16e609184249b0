# The option tree under services.nginxHa that IS the declaration: node,
# instances, checks, notify and nginx (nginx-options.nix) map one to one
# onto the JSON keys the daemon reads (src/config/types.rs,
# src/config/nginx.rs), so the option names are camelCase like the JSON. Options left at null are left out of the JSON and take the
# daemon's default, which the description states.
{ lib, nhLib, hostName }:
let
  inherit (lib) mkOption types literalExpression;
  nh = nhLib.types;
  d = nhLib.daemonDefaults;

  # An option the daemon defaults when it is absent from the JSON.
  optional = type: daemonDefault: description: extra: mkOption ({
    type = types.nullOr type;
    default = null;
    defaultText = literalExpression "null";
    description = description
      + (lib.optionalString (daemonDefault != null)
      "\n\nLeft unset (`null`), the daemon's default applies: `${builtins.toJSON daemonDefault}`.");
  } // extra);

  timingOptions = {
    interval = optional nh.duration d.checks.interval
      "How often the check runs (10ms to 1h)."
      { example = "500ms"; };
    timeout = optional nh.duration d.checks.timeout
      "How long one run may take; more than 0 and at most `interval`."
      { example = "300ms"; };
    rise = optional (types.ints.between 1 100) d.checks.rise
      "Consecutive successes before a failing check counts as healthy again."
      { example = 3; };
    fall = optional (types.ints.between 1 100) d.checks.fall
      "Consecutive failures before a healthy check counts as failing."
      { example = 3; };
    weight = optional (types.ints.between (-254) 254) d.checks.weight
      ''
        Effect on the priority, as in keepalived: `0` puts the instances that
        track this check into FAULT while it fails; a negative weight is
        subtracted from the priority while it fails; a positive one is added
        while it is healthy.
      ''
      { example = -60; };
  };

  instanceModule = { name, ... }: {
    options = {
      interface = mkOption {
        type = nh.interfaceName;
        example = "eth0";
        description = "Network interface that carries the adverts and the virtual IPs of instance `${name}`.";
      };
      virtualRouterId = mkOption {
        type = types.ints.between 1 255;
        example = 51;
        description = ''
          VRID, 1..255. It must be the same on every node of the cluster and
          unique per interface and address family on the LAN (other VRRP
          routers included).
        '';
      };
      version = optional (types.enum [ 2 3 ]) d.version
        "VRRP version: 3 (RFC 5798, IPv4 and IPv6, centisecond adverts) or 2 (RFC 3768, IPv4 only, whole seconds, optional password)."
        { example = 2; };
      virtualIps = mkOption {
        type = types.nonEmptyListOf nh.ipPrefix;
        example = [ "192.0.2.100/24" ];
        description = "The virtual addresses with prefix length. One family per instance; use a second instance for the other family.";
      };
      advertInterval = optional nh.duration d.advertInterval
        "Advertisement interval: a multiple of 10ms up to 40.95s for VRRPv3, whole seconds 1s..255s for VRRPv2."
        { example = "100ms"; };
      priority = optional (types.ints.between 1 255) null
        "Overrides `services.nginxHa.node.priority` for this instance. 255 is only for an address owner."
        { example = 120; };
      preempt = optional types.bool true
        "Whether a higher-priority node takes the virtual IPs back from a lower-priority master."
        { example = false; };
      preemptDelay = optional nh.duration d.preemptDelay
        "How long a higher-priority node waits after it becomes eligible (start, or its checks pass again) before it takes the virtual IPs back; at most 1h."
        { example = "5s"; };
      acceptMode = optional types.bool true
        "RFC 5798 Accept_Mode: the master accepts traffic to the virtual IPs. nginx has to answer on them, so leave it on."
        { };
      addressOwner = optional types.bool d.addressOwner
        "This node owns the virtual addresses (priority 255, RFC 5798 §3). Do not override `priority` then."
        { };
      unicastPeers = mkOption {
        type = types.listOf nh.ipAddress;
        default = [ ];
        example = [ "192.0.2.11" "192.0.2.12" ];
        description = ''
          Send adverts by unicast to these addresses instead of multicast.
          List every node of the cluster: a node skips its own address, so
          the same list serves all nodes. With `openFirewall`, VRRP is only
          accepted from these addresses.
        '';
      };
      unicastSource = optional nh.ipAddress null
        "Source address of unicast adverts. Unset, the daemon uses the interface's primary address. Node-specific: set it per node, not in the shared cluster file."
        { example = "192.0.2.11"; };
      authPasswordFile = optional types.path null
        ''
          VRRPv2 only: file holding the simple-text password (at most 8
          bytes). It is read at service start through systemd's
          `LoadCredential=`, so it can be root-only and must not be in the Nix
          store (use agenix, sops-nix or a file you deploy; see the README).
          The daemon is given the credential's path, not this one.
        ''
        { example = literalExpression "config.age.secrets.vrrp-password.path"; };
      v3ChecksumAsV2 = optional types.bool d.v3ChecksumAsV2
        "keepalived's `v3_checksum_as_v2`: VRRPv3 over IPv4 checksummed without the pseudo-header, for peers built that way."
        { };
      announce = mkOption {
        default = { };
        description = "Gratuitous ARP / unsolicited neighbour advertisements sent on becoming master.";
        type = types.submodule {
          options = {
            count = optional (types.ints.between 0 100) d.announce.count
              "How many announcements to send."
              { example = 3; };
            delay = optional nh.duration d.announce.delay
              "Pause between two announcements; at most 10s."
              { example = "100ms"; };
            refresh = optional nh.duration d.announce.refresh
              "Repeat the announcements this often while master (`0s`: never)."
              { example = "60s"; };
          };
        };
      };
      fastTakeover = optional (types.enum [ "auto" "on" "off" ]) "auto"
        ''
          A master that loses nginx leaves at once with a priority-0 advert, so
          the backup takes over after Skew_Time instead of
          Master_Down_Interval. `auto` turns it on only where it is provably
          safe: unicast with exactly one peer.
        ''
        { example = "on"; };
      trackChecks = optional (types.listOf types.str) null
        "Names of the checks that affect this instance (`nginx` or names under `checks.extra`). Unset: all of them."
        { example = [ "nginx" "api" ]; };
      trackInterface = optional types.bool true
        "Enter FAULT when the interface loses its link."
        { };
    };
  };

  extraCheckModule = {
    options = {
      type = mkOption {
        type = types.enum [ "http" "tcp" "exec" ];
        example = "http";
        description = "Kind of check; decides which of `url`, `expectStatus`, `address` and `command` apply.";
      };
      url = optional types.str null
        "http: the URL to GET, `http://IP-or-localhost[:PORT]/PATH`."
        { example = "http://127.0.0.1:8080/healthz"; };
      expectStatus = optional (types.ints.between 100 599) null
        "http: the status code that means healthy. Unset: the daemon's rule (2xx)."
        { example = 200; };
      address = optional types.str null
        "tcp: `ADDRESS:PORT` to connect to (IPv6 as `[::1]:443`)."
        { example = "127.0.0.1:5432"; };
      command = optional nh.argv null
        "exec: argv, first element an absolute path; exit status 0 means healthy. Runs without capabilities."
        { example = literalExpression ''[ "''${pkgs.coreutils}/bin/test" "-e" "/run/app/ready" ]''; };
    } // timingOptions;
  };
in
{
  node = {
    name = mkOption {
      type = nh.safeName;
      default = hostName;
      defaultText = literalExpression "config.networking.hostName";
      example = "lb1";
      description = "Name of this node in logs and status (letters, digits, `-`, `_`; at most 64). Node-specific.";
    };
    priority = mkOption {
      type = types.ints.between 1 254;
      example = 150;
      description = ''
        VRRP priority of this node for every instance that does not override
        it, 1..254; the highest healthy node is master. Node-specific: this
        and `node.name` are what differ between the nodes that import one
        shared cluster declaration.
      '';
    };
  };

  instances = mkOption {
    type = types.attrsOf (types.submodule instanceModule);
    default = { };
    example = literalExpression ''
      {
        web = {
          interface = "eth0";
          virtualRouterId = 51;
          virtualIps = [ "192.0.2.100/24" ];
          advertInterval = "100ms";
          unicastPeers = [ "192.0.2.11" "192.0.2.12" ];
        };
      }
    '';
    description = "The VRRP instances (virtual routers), by name. At least one is needed.";
  };

  checks = {
    nginx = {
      enable = optional types.bool d.checks.enable
        "Watch nginx: its master process (through its pidfile) and its stub_status page."
        { example = false; };
      pidFile = optional nh.absolutePath d.checks.pidFile
        "nginx's pidfile; the master process is watched as an event, not polled. NixOS' nginx writes the default."
        { };
      statusUrl = optional types.str d.checks.statusUrl
        "stub_status URL probed every `interval` (plain http, loopback). With `nginx.loopbackStatusPage` the module serves it."
        { example = "http://127.0.0.1:8081/nginx_status"; };
    } // timingOptions;

    extra = mkOption {
      type = types.attrsOf (types.submodule extraCheckModule);
      default = { };
      example = literalExpression ''
        {
          api = { type = "http"; url = "http://127.0.0.1:8080/healthz"; expectStatus = 200; weight = -60; };
          db = { type = "tcp"; address = "127.0.0.1:5432"; interval = "2s"; timeout = "1s"; weight = -20; };
        }
      '';
      description = "Further health checks by name (not `nginx`), tracked by the instances that list them in `trackChecks`.";
    };
  };

  nginx = import ./nginx-options.nix { inherit lib nhLib optional; };

  notify =
    let
      hook = event: mkOption {
        type = types.listOf nh.argv;
        default = [ ];
        example = literalExpression ''[ [ "''${pkgs.util-linux}/bin/logger" "-t" "nginx-ha" "${event}" ] ]'';
        description = "Commands (argv lists, absolute program path) run in order on entering ${event}; the instance name, new state and priority are appended. They run without capabilities.";
      };
    in
    {
      master = hook "MASTER";
      backup = hook "BACKUP";
      fault = hook "FAULT";
      stop = hook "stop";
      timeout = optional nh.duration d.notifyTimeout
        "How long one notify command may run (more than 0, at most 10m)."
        { example = "5s"; };
    };
}
