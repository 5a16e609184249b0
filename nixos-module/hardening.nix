# The one source of the nginx-ha.service sandbox. The NixOS module merges
# this into systemd.services.nginx-ha.serviceConfig, and
# contrib/systemd/unit.nix renders it into the plain unit file shipped for
# Debian and other systemd distributions; `.ci/nix-checks` fails when the
# committed contrib/systemd/nginx-ha.service is not what this file renders.
#
# Pure data (no pkgs, no lib) so it evaluates with a bare nix-instantiate.
# A list value means "one line per element", as NixOS renders it.
{
  # READY/STATUS/WATCHDOG/STOPPING come from the daemon's main process
  # only: health commands and notify hooks it spawns must not be able to
  # tell systemd that the service is ready.
  Type = "notify";
  NotifyAccess = "main";
  # The daemon pets the watchdog from its event loop, so a wedged loop (the
  # one thing that would leave a stale VIP owner sending adverts) is killed
  # and restarted.
  WatchdogSec = "10s";
  Restart = "always";
  RestartSec = "1s";

  # No fixed account: the daemon owns nothing on disk outside its state and
  # runtime directories, which systemd chowns for the dynamic user.
  DynamicUser = true;
  # Raw sockets for VRRP (protocol 112) and GARP/NA, netlink to add and
  # remove the virtual addresses. Nothing else: no CAP_NET_BIND_SERVICE,
  # no CAP_KILL (nginx is restarted by systemd, not by us).
  AmbientCapabilities = [ "CAP_NET_RAW" "CAP_NET_ADMIN" ];
  CapabilityBoundingSet = [ "CAP_NET_RAW" "CAP_NET_ADMIN" ];
  NoNewPrivileges = true;
  SecureBits = "noroot-locked";

  ProtectSystem = "strict";
  ProtectHome = true;
  PrivateTmp = true;
  PrivateDevices = true;
  PrivateMounts = true;
  # The daemon watches nginx through a pidfd opened from nginx's pidfile;
  # pidfd_open() does not go through /proc, so the other users' processes
  # can stay invisible.
  ProtectProc = "invisible";
  ProcSubset = "pid";
  ProtectKernelTunables = true;
  ProtectKernelModules = true;
  ProtectKernelLogs = true;
  ProtectControlGroups = true;
  ProtectClock = true;
  ProtectHostname = true;
  # AF_INET/AF_INET6: VRRP raw sockets and HTTP health probes; AF_NETLINK:
  # addresses and link state; AF_PACKET: gratuitous ARP; AF_UNIX: journald,
  # sd_notify and the control socket.
  RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_NETLINK" "AF_PACKET" "AF_UNIX" ];
  RestrictNamespaces = true;
  RestrictRealtime = true;
  RestrictSUIDSGID = true;
  LockPersonality = true;
  MemoryDenyWriteExecute = true;
  RemoveIPC = true;
  KeyringMode = "private";
  SystemCallArchitectures = "native";
  # @privileged also holds setuid/setgroups/capset: the daemon never needs
  # them here, because systemd starts it as the dynamic user with exactly
  # the two capabilities above already in the ambient set. EPERM rather
  # than SIGSYS, so a stray call is an error the daemon can log.
  SystemCallFilter = [ "@system-service" "~@privileged @resources" ];
  SystemCallErrorNumber = "EPERM";
  UMask = "0077";
  DevicePolicy = "closed";

  # %t/nginx-ha: status socket and run-time state; %S/nginx-ha: the
  # persistent maintenance flag and the classic STATE=MASTER file.
  RuntimeDirectory = "nginx-ha";
  RuntimeDirectoryMode = "0750";
  StateDirectory = "nginx-ha";
  StateDirectoryMode = "0750";
}
