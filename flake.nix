{
  description = "nginx-ha: VRRP virtual IPs for nginx, with built-in nginx health checks";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];

      # `nix flake check --override-input nixpkgs <lib-only flake>` (e.g.
      # nix-community/nixpkgs.lib) must still evaluate the module and its
      # tests: everything that needs packages sits behind this guard.
      hasPkgs = nixpkgs ? legacyPackages;

      forSystems = f: lib.genAttrs systems f;
      pkgsFor = system: import nixpkgs {
        inherit system;
        overlays = [ self.overlays.default ];
      };

      # The module evaluation test, with this flake's lib: every check
      # true, every bad configuration refused.
      evalTest = import ./nixos-module/eval-test.nix { inherit lib; };
      evalTestPasses =
        let
          failedChecks = lib.attrNames (lib.filterAttrs (_: ok: ok != true) evalTest.checks);
          acceptedBad = lib.attrNames (lib.filterAttrs
            (_: c: (builtins.tryEval (builtins.deepSeq c.result c.result)).success)
            evalTest.bad);
        in
        if failedChecks != [ ] then throw "module checks failed: ${toString failedChecks}"
        else if acceptedBad != [ ] then throw "bad configurations accepted: ${toString acceptedBad}"
        else true;
    in
    {
      overlays.default = final: _prev: {
        nginx-ha = final.callPackage ./nix/package.nix { };
      };

      # Brings its own package, so the overlay is optional.
      nixosModules.default = { lib, pkgs, ... }: {
        imports = [ ./nixos-module ];
        services.nginxHa.package =
          lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
      };
      nixosModules.nginx-ha = self.nixosModules.default;

      packages = lib.optionalAttrs hasPkgs (forSystems (system:
        let pkgs = pkgsFor system; in {
          default = pkgs.nginx-ha;
          inherit (pkgs) nginx-ha;
        }));

      checks = forSystems (system:
        # Evaluated even with a lib-only nixpkgs: the assertion fails the
        # flake check before anything is built.
        assert evalTestPasses;
        lib.optionalAttrs hasPkgs (
          let
            pkgs = pkgsFor system;
            vmTests = import ./vm-tests { inherit pkgs self; };
          in
          {
            package = pkgs.nginx-ha;

            # The examples' JSON through the real check-config.
            module-examples = pkgs.runCommand "nginx-ha-module-examples"
              {
                nativeBuildInputs = [ pkgs.nginx-ha ];
                examples = builtins.toJSON evalTest.examples;
                passAsFile = [ "examples" ];
              }
              ''
                for name in ${toString (lib.attrNames evalTest.examples)}; do
                  ${lib.getExe pkgs.jq} ".$name" "$examplesPath" > "$name.json"
                  nginx-ha check-config --config "$name.json"
                done
                touch "$out"
              '';

            unit-file-current = pkgs.runCommand "nginx-ha-unit-file-current" { } ''
              diff -u ${./contrib/systemd/nginx-ha.service} \
                ${pkgs.writeText "nginx-ha.service" (import ./contrib/systemd/unit.nix { })}
              touch "$out"
            '';
          }
          # The VM tests need KVM-capable builders; `nix flake check` runs
          # them where it can.
          // lib.optionalAttrs (pkgs ? testers && pkgs.testers ? runNixOSTest) vmTests
        ));

      devShells = lib.optionalAttrs hasPkgs (forSystems (system:
        let pkgs = pkgsFor system; in {
          default = pkgs.mkShell {
            inputsFrom = [ pkgs.nginx-ha ];
            packages = with pkgs; [
              clippy
              rustfmt
              rust-analyzer
              deadnix
              nixpkgs-fmt
              nix
              # The network-namespace lab and its interop peer.
              nginx
              keepalived
              curl
              jq
              iproute2
              tcpdump
            ];
          };
        }));

      formatter = lib.optionalAttrs hasPkgs
        (forSystems (system: nixpkgs.legacyPackages.${system}.nixpkgs-fmt));
    };
}
