# The NixOS VM tests, as flake checks (flake.nix adds them only when
# nixpkgs has packages and pkgs.testers.runNixOSTest).
{ pkgs, self }:
let
  run = test: pkgs.testers.runNixOSTest test;
in
{
  vm-failover = run (import ./failover.nix { inherit pkgs self; });
  # Same scenarios with the nftables firewall, for the extraInputRules path.
  vm-failover-nftables = run (import ./failover.nix { inherit pkgs self; nftables = true; });
  vm-tls-maintenance = run (import ./tls-maintenance.nix { inherit pkgs self; });
}
