# frozen_string_literal: true

require "rbconfig"
require "rubygems/package"
require "tmpdir"

# Builds the gem, installs it with no gem server into a scratch GEM_HOME (the
# extension compiles at install), and uses it from elsewhere, plain and
# through Bundler. script/test sets CARGO_TARGET_DIR so this reuses the
# compiled dependencies; without it the install builds from scratch. The
# install builds with rake compile's SOURCE_DATE_EPOCH (rakelib/compile.rake),
# or RubyGems would set a new one and rebuild every C dependency.
RSpec.describe "the shopify_events source gem" do
  include SpecCommands

  root = SpecProcesses::ROOT

  it "builds, installs with --local, loads from anywhere and from a Bundler app, and ships the command" do
    Dir.mktmpdir("shopify_events-gem") do |dir|
      gem_home = File.join(dir, "gems")
      env = { "GEM_HOME" => gem_home, "GEM_PATH" => [gem_home, *Gem.path].join(File::PATH_SEPARATOR),
              "RUBYOPT" => nil, "RUBYLIB" => nil, "BUNDLE_GEMFILE" => nil, "SOURCE_DATE_EPOCH" => "315619200" }
      run!(env, "gem", "build", "shopify_events.gemspec", "--output", File.join(dir, "shopify_events.gem"), chdir: root)

      files = Gem::Package.new(File.join(dir, "shopify_events.gem")).spec.files
      expect(files).to include("Cargo.lock", "ext/shopify_events/extconf.rb", "exe/shopify-events",
                               "crates/sysvmq/src/lib.rs", "crates/cli/src/main.rs",
                               "crates/core/src/lib.rs", "lib/shopify_events.rb")
      expect(files.grep(%r{\A(spec|bench|docs|target|tmp|\.ci|script)/|/tests/|\.so\z})).to be_empty

      run!(env, "gem", "install", "--local", "--no-document", File.join(dir, "shopify_events.gem"), chdir: dir)
      script = 'require "shopify_events"; ShopifyEvents.configure { |c| c.transport = :test }; ' \
               'print ShopifyEvents.emit("gem.smoke", { ok: true }).size, " ", ' \
               "$LOADED_FEATURES.grep(/shopify_events\\.so/)"
      output = run!(env, RbConfig.ruby, "-e", script, chdir: "/")
      expect(output).to start_with("36 ")
      expect(output).to include(gem_home)

      version = run!(env, File.join(gem_home, "bin", "shopify-events"), "--version", chdir: "/")
      expect(version).to include("shopify-events #{ShopifyEvents::VERSION}")

      app = File.join(dir, "app")
      Dir.mkdir(app)
      File.write(File.join(app, "Gemfile"), %(source "https://rubygems.org"\ngem "shopify_events"\n))
      run!(env, "bundle", "install", "--local", "--quiet", chdir: app)
      bundled = run!(env, "bundle", "exec", RbConfig.ruby, "-e", script, chdir: app)
      expect(bundled).to start_with("36 ")
    end
  end
end
