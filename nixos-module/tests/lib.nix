# How the module tests evaluate a NixOS system: the real nixpkgs NixOS
# modules (nginx, systemd, both firewalls), this module, and the package
# from this repository (instantiated, never built, where no builder is).
{ nixpkgs ? <nixpkgs>, system ? "x86_64-linux" }:
{
  evalSystem = { modules, nftables ? false }:
    import (nixpkgs + "/nixos/lib/eval-config.nix") {
      inherit system;
      modules = [
        ../.
        {
          nixpkgs.overlays = [ (final: _: { nginx-ha = final.callPackage ../../nix/package.nix { }; }) ];
          boot.loader.grub.enable = false;
          fileSystems."/" = { device = "/dev/null"; fsType = "ext4"; };
          system.stateVersion = "26.05";
          networking.nftables.enable = nftables;
        }
      ] ++ modules;
    };
}
