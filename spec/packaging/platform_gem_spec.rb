# frozen_string_literal: true

require "fileutils"
require "rbconfig"
require "rubygems/package"
require "tmpdir"

# `rake native:gem` packs what `rake compile` built (script/test compiled
# first, so nothing is rebuilt here) into a platform gem, which must install
# and run on a host with no Rust and no C compiler: the install runs with a
# PATH holding only ruby and gem, plus stand-ins for the compilers that
# record any call.
RSpec.describe "the precompiled platform gem" do
  include SpecCommands

  root = SpecProcesses::ROOT
  abi = RUBY_VERSION[/\A\d+\.\d+/]
  dlext = RbConfig::CONFIG.fetch("DLEXT")
  gem_file = File.join(root, "pkg", "shopify_events-#{ShopifyEvents::VERSION}-#{Gem::Platform.local}.gem")

  # A bin directory with ruby and gem, and a stand-in for each compiler
  # that logs its call to `log` and fails.
  def toolless_path(dir, log)
    bin = File.join(dir, "bin")
    FileUtils.mkdir_p(bin)
    FileUtils.ln_s(RbConfig.ruby, File.join(bin, "ruby"))
    FileUtils.ln_s(File.join(RbConfig::CONFIG.fetch("bindir"), "gem"), File.join(bin, "gem"))
    %w[cargo rustc cc gcc clang make].each do |tool|
      File.write(File.join(bin, tool), "#!/bin/sh\necho \"#{tool} $*\" >>#{log}\nexit 1\n")
      File.chmod(0o755, File.join(bin, tool))
    end
    bin
  end

  before(:context) { run!({}, "rake", "native:gem", chdir: root) }

  it "holds the compiled extension and command for this Ruby, and nothing to compile" do
    spec = Gem::Package.new(gem_file).spec

    expect(spec.platform.to_s).to eq(Gem::Platform.local.to_s)
    expect(spec.extensions).to be_empty
    expect(spec.files).to include("lib/shopify_events/#{abi}/shopify_events.#{dlext}",
                                  "lib/shopify_events/shopify-events", "exe/shopify-events", "lib/shopify_events.rb")
    expect(spec.files.grep(%r{\A(crates|ext|spec|target|tmp)/|\ACargo\.})).to be_empty
    expect(spec.required_ruby_version).to be_satisfied_by(Gem::Version.new(RUBY_VERSION))
    major, minor = abi.split(".").map(&:to_i)
    expect(spec.required_ruby_version).not_to be_satisfied_by(Gem::Version.new("#{major}.#{minor + 1}.0"))
  end

  it "installs with no cargo or C compiler on PATH, loads its precompiled extension and runs the command" do
    Dir.mktmpdir("shopify_events-native") do |dir|
      gem_home = File.join(dir, "gems")
      calls = File.join(dir, "compiler-calls.log")
      env = { "PATH" => toolless_path(dir, calls), "HOME" => dir, "GEM_HOME" => gem_home, "GEM_PATH" => gem_home,
              "RUBYOPT" => nil, "RUBYLIB" => nil, "BUNDLE_GEMFILE" => nil, "SHOPIFY_EVENTS_TRANSPORT" => "test" }

      run!(env, "gem", "install", "--local", "--no-document", gem_file, chdir: dir)
      script = 'require "shopify_events"; print ShopifyEvents.emit("gem.smoke", { ok: true }).size, " ", ' \
               "$LOADED_FEATURES.grep(/shopify_events\\.#{dlext}/).join(\",\")"
      output = run!(env, "ruby", "-e", script, chdir: "/")
      installed = File.join(gem_home, "gems", "shopify_events-#{ShopifyEvents::VERSION}-#{Gem::Platform.local}")
      expect(output).to eq("36 #{File.join(installed, "lib", "shopify_events", abi, "shopify_events.#{dlext}")}")

      version = run!(env, File.join(gem_home, "bin", "shopify-events"), "--version", chdir: "/")
      expect(version).to eq("shopify-events #{ShopifyEvents::VERSION}\n")
      expect(File.exist?(calls)).to be(false), -> { "the install called a compiler:\n#{File.read(calls)}" }
    end
  end
end
