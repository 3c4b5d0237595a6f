{
  description = "Quilt: a fast Linux container runtime for AI-agent workloads";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      buildInputs = pkgs: with pkgs; [
        liburing nghttp2 protobufc libarchive libseccomp sqlite llhttp nettle jansson
      ];
      nativeBuildInputs = pkgs: with pkgs; [ meson ninja pkg-config protobufc python3 ];

      # Debian ships llhttp's C sources; nixpkgs ships the built library, so
      # point the build at a directory holding the sources from llhttp's
      # release tarball and the grpc protos from the grpc source.
      quilt = pkgs: pkgs.stdenv.mkDerivation {
        pname = "quilt";
        version = "0.1.0";
        src = ./.;
        nativeBuildInputs = nativeBuildInputs pkgs;
        buildInputs = buildInputs pkgs;
        mesonFlags = [
          "-Dtests=false"
          "-Dllhttp_dir=${pkgs.llhttp.src}/src"
          "-Dllhttp_include=${pkgs.llhttp.src}/include"
          "-Dgrpc_proto_dir=${pkgs.grpc.src}/src/proto"
        ];
        meta = with pkgs.lib; {
          description = "Quilt container runtime daemon and CLI";
          license = licenses.mit;
          platforms = platforms.linux;
        };
      };
    in {
      packages = forAll (pkgs: rec {
        quilt-all = quilt pkgs;
        quiltd = quilt-all;
        quilt-cli = quilt-all;
        default = quilt-all;
      });

      devShells = forAll (pkgs: {
        default = pkgs.mkShell {
          nativeBuildInputs = nativeBuildInputs pkgs ++ (with pkgs; [ gdb clang-tools ]);
          buildInputs = buildInputs pkgs ++ (with pkgs; [
            cmocka nghttp2.bin curl
            (python3.withPackages (ps: with ps; [ grpcio grpcio-tools protobuf ]))
          ]);
        };
      });
    };
}
