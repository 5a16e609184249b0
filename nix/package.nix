# nginx-ha built from the committed Cargo.lock (no network in the build).
{ lib, rustPlatform }:
let
  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);
in
rustPlatform.buildRustPackage {
  pname = "nginx-ha";
  inherit (cargoToml.package) version;

  # Only what cargo reads, so editing docs, Nix files or CI scripts does
  # not rebuild the daemon.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      # A workspace member (the lab harness, a dev-dependency): Cargo
      # loads every member's manifest even to build the daemon alone.
      ../crates
      (lib.fileset.maybeMissing ../nginx-templates)
      (lib.fileset.maybeMissing ../tests)
      (lib.fileset.maybeMissing ../benches)
      (lib.fileset.maybeMissing ../bench)
      (lib.fileset.maybeMissing ../examples)
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # The unit tests are pure; the integration tests build network
  # namespaces and run nginx as root, which the build sandbox cannot.
  cargoTestFlags = [ "--lib" "--bins" ];

  meta = {
    description = "VRRP virtual IPs for nginx with built-in nginx health checks";
    mainProgram = "nginx-ha";
    platforms = lib.platforms.linux;
  };
}
