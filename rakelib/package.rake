# frozen_string_literal: true

# The Debian package for hosts: cargo-deb packs the `shopify-events` binary
# that `rake compile` built (no second build) with the files under packaging/
# ([package.metadata.deb] in crates/cli/Cargo.toml lists them). cargo-deb
# itself is built once into /opt/cargo-deb, like Tansu into /opt/tansu: a
# fresh machine builds it (about two minutes), later runs find it.

# Where cargo-deb is, and whether the pinned version is there.
module CargoDeb
  VERSION = "3.8.0"
  ROOT = ENV.fetch("CARGO_DEB_ROOT", "/opt/cargo-deb")
  BIN = File.join(ROOT, "bin", "cargo-deb")

  module_function

  def installed?
    File.executable?(BIN) && `#{BIN} --version 2>/dev/null`.split.last == VERSION
  end
end

namespace :package do
  desc "Build pkg/shopify-events_VERSION-1_amd64.deb (binary, systemd units, sysctl.d, config, user) with cargo-deb"
  task deb: %i[compile cargo_deb] do
    root = File.expand_path("..", __dir__)
    # --strip: the release profile keeps line tables (cargo-deb would ship
    # them); stripped, the binary is 7 MB instead of 38.
    sh CargoDeb::BIN, "deb", "--no-build", "--strip", "--package", "shopify-events-cli",
       "--manifest-path", File.join(root, "Cargo.toml"), "--output", File.join(root, "pkg")
  end

  # Not listed by `rake -T`: script/test and package:deb call it.
  task :cargo_deb do
    next if CargoDeb.installed?

    puts "==> cargo install cargo-deb #{CargoDeb::VERSION} into #{CargoDeb::ROOT} (once, a few minutes)"
    sh "cargo", "install", "cargo-deb", "--version", CargoDeb::VERSION, "--locked", "--force",
       "--root", CargoDeb::ROOT
  end
end
