{
  description = "nginx-ha: VRRP virtual IPs for nginx, with built-in nginx health checks";

  # The current stable NixOS release. Its rustc must meet Cargo.toml's
  # rust-version (1.88), for the package and the dev-dependencies its
  # check phase compiles.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forSystems = f: lib.genAttrs systems f;
      pkgsFor = system: import nixpkgs {
        inherit system;
        overlays = [ self.overlays.default ];
      };

      # The module tests (nixos-module/tests): real NixOS evaluations of the
      # examples with both firewalls, and one declaration per option.
      moduleTests = import ./nixos-module/tests { nixpkgs = nixpkgs.outPath; };
      failedWiring = lib.attrNames (lib.filterAttrs (_: ok: ok != true) moduleTests.wiring);
      coverageGaps = moduleTests.coverage.schemaWithoutOption ++ moduleTests.coverage.optionWithoutSchema;
      acceptedOutOfRange = lib.attrNames (lib.filterAttrs (_: evaluated: evaluated) moduleTests.outOfRange);
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

      packages = forSystems (system:
        let pkgs = pkgsFor system; in {
          default = pkgs.nginx-ha;
          inherit (pkgs) nginx-ha;
        });

      checks = forSystems (system:
        # Evaluation-time facts fail the flake check before anything builds.
        assert lib.assertMsg (failedWiring == [ ]) "module wiring checks failed: ${toString failedWiring}";
        assert lib.assertMsg (coverageGaps == [ ]) "options and schema differ: ${toString coverageGaps}";
        assert lib.assertMsg (acceptedOutOfRange == [ ]) "out-of-range values accepted: ${toString acceptedOutOfRange}";
        let
          pkgs = pkgsFor system;
          vmTests = import ./vm-tests { inherit pkgs self; };
          declarations = pkgs.writeText "declarations.json"
            (builtins.toJSON (moduleTests.declarations // moduleTests.variants));
        in
        {
          package = pkgs.nginx-ha;

          # Every example system's declaration and one declaration per
          # option (each leaf set to its example) through the real
          # check-config: every leaf must be accepted on some base.
          module-declarations = pkgs.runCommand "nginx-ha-module-declarations"
            { nativeBuildInputs = [ pkgs.nginx-ha pkgs.jq ]; }
            ''
              mkdir d
              jq -r 'keys[]' ${declarations} | while read -r name; do
                jq ".[\"$name\"]" ${declarations} > d/x.json
                if nginx-ha check-config --config d/x.json >/dev/null 2>&1; then
                  echo "''${name%@*}" >> ok
                else
                  echo "''${name%@*}" >> refused
                fi
              done
              touch ok refused
              bad=$(sort -u refused | comm -23 - <(sort -u ok))
              if [ -n "$bad" ]; then echo "refused on every base: $bad" >&2; exit 1; fi
              touch "$out"
            '';

          unit-file-current = pkgs.runCommand "nginx-ha-unit-file-current" { } ''
            diff -u ${./contrib/systemd/nginx-ha.service} \
              ${pkgs.writeText "nginx-ha.service" (import ./contrib/systemd/unit.nix { })}
            touch "$out"
          '';

          options-doc = (pkgs.nixosOptionsDoc {
            options = { inherit ((moduleTests.systems.lb1-iptables).options.services) nginxHa; };
            warningsAreErrors = true;
          }).optionsCommonMark;
        }
        # The VM tests need KVM-capable builders; `nix flake check` runs
        # them where it can.
        // vmTests
      );

      devShells = forSystems (system:
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
        });

      formatter = forSystems (system: nixpkgs.legacyPackages.${system}.nixpkgs-fmt);
    };
}
