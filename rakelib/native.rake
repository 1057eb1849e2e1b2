# frozen_string_literal: true

# The precompiled platform gem: the extension and the `shopify-events`
# command that `rake compile` built, packed for the Ruby and the platform
# this runs on, so that `gem install` runs no compiler. The extension goes
# under lib/shopify_events/<ruby ABI>/ (lib/shopify_events/native.rb loads it
# from there, or from where a source build puts it); the command does not
# depend on Ruby's ABI and goes to lib/shopify_events/shopify-events, where
# exe/shopify-events finds it.
#
# One gem covers one Ruby minor version on one platform (here: the Ruby
# running rake, x86_64-linux with glibc). A release covering more builds this
# task once per Ruby in rb-sys' cross-compilation images (`rb-sys-dock`) or
# rake-compiler-dock, and merges the extensions into one gem per platform
# (lib/shopify_events/3.1/, 3.2/, ...); see README, "Installing".

require "fileutils"
require "rbconfig"
require "rubygems/package"

# Builds the platform gem from what `rake compile` left in lib/shopify_events.
module NativeGem
  ROOT = File.expand_path("..", __dir__)
  # What only a source build needs: the Cargo workspace and the extension's build.
  RUST_SOURCES = %r{\A(Cargo\.|crates/|ext/)}

  module_function

  # "3.1" for Ruby 3.1.x: an extension is built for one minor version.
  def ruby_abi
    RUBY_VERSION[/\A\d+\.\d+/]
  end

  # Each compiled file in the checkout, and where it goes in the gem.
  def compiled_files
    lib = "lib/shopify_events"
    dlext = RbConfig::CONFIG.fetch("DLEXT")
    { "#{lib}/shopify_events.#{dlext}" => "#{lib}/#{ruby_abi}/shopify_events.#{dlext}",
      "#{lib}/shopify-events" => "#{lib}/shopify-events" }
  end

  # ">= 3.1", "< 3.2.dev": this minor version, any patch or preview of it.
  def ruby_requirement
    major, minor = ruby_abi.split(".").map(&:to_i)
    [">= #{ruby_abi}", "< #{major}.#{minor + 1}.dev"]
  end

  # The source gem's spec, without the Rust sources and the extension
  # build, with the compiled files.
  def spec
    source = Dir.chdir(ROOT) { Gem::Specification.load("shopify_events.gemspec") }
    source.dup.tap do |spec|
      spec.platform = Gem::Platform.local
      spec.extensions = []
      spec.files = source.files.grep_v(RUST_SOURCES) + compiled_files.values
      spec.required_ruby_version = ruby_requirement
    end
  end

  # Builds the gem in a clean staging directory (never in lib/, where a
  # stale extension would shadow the next `rake compile`) and moves it to
  # `out_dir`. Returns its path.
  def build(out_dir)
    gem_spec = spec
    stage = stage(gem_spec)
    file = Dir.chdir(stage) { Gem::Package.build(gem_spec) }
    FileUtils.mkdir_p(out_dir)
    FileUtils.mv(File.join(stage, file), out_dir)
    File.join(out_dir, file)
  end

  # Copies the gem's files into tmp/native/<gem>/ and strips the compiled
  # ones of their debug info (the release profile's line tables: 26 of the
  # extension's 31 MB; symbol names stay for backtraces). Returns the dir.
  def stage(gem_spec)
    dir = File.join(ROOT, "tmp", "native", gem_spec.full_name)
    FileUtils.rm_rf(dir)
    (gem_spec.files - compiled_files.values).each { |file| copy(File.join(ROOT, file), File.join(dir, file)) }
    compiled_files.each { |from, to| copy_stripped(File.join(ROOT, from), File.join(dir, to)) }
    dir
  end

  def copy_stripped(from, to)
    copy(from, to)
    system("strip", "--strip-debug", to, exception: true)
  end

  def copy(from, to)
    FileUtils.mkdir_p(File.dirname(to))
    FileUtils.cp(from, to, preserve: true)
  end
end

namespace :native do
  desc "Build pkg/shopify_events-VERSION-#{Gem::Platform.local}.gem: extension and command " \
       "precompiled for Ruby #{NativeGem.ruby_abi} (installs without Rust or a C compiler)"
  task gem: :compile do
    path = NativeGem.build(File.join(NativeGem::ROOT, "pkg"))
    puts "built #{path.delete_prefix("#{NativeGem::ROOT}/")}"
  end
end
