# frozen_string_literal: true

require_relative "lib/shopify_events/version"

Gem::Specification.new do |spec|
  spec.name = "shopify_events"
  spec.version = ShopifyEvents::VERSION
  spec.authors = ["Shopify"]
  spec.summary = "Emit events from Rails to Kafka through a SysV message queue, for about a microsecond each"
  spec.description = "A Rust core puts each event into a host SysV message queue with one non-blocking " \
                     "msgsnd; a host daemon drains the queue into Kafka. Nothing is lost while the app, " \
                     "the daemon or Kafka restart."
  spec.license = "MIT"
  spec.homepage = "https://github.com/Shopify/shopify_events"
  spec.required_ruby_version = ">= 3.0"
  spec.metadata["rubygems_mfa_required"] = "true"

  # Exactly what building and loading the gem needs: the Ruby library, the
  # Cargo workspace (manifests, lock file, crate sources) and the extension.
  spec.files = Dir[
    "lib/**/*.rb",
    "Cargo.toml", "Cargo.lock",
    "crates/*/Cargo.toml", "crates/*/src/**/*.rs",
    "ext/shopify_events/Cargo.toml", "ext/shopify_events/extconf.rb", "ext/shopify_events/src/**/*.rs",
    "exe/shopify-events", "README.md", "LICENSE.txt"
  ]
  spec.bindir = "exe"
  spec.executables = ["shopify-events"]
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/shopify_events/extconf.rb"]
end
