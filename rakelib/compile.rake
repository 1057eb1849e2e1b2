# frozen_string_literal: true

require "rbconfig"

desc "Build the native extension into lib/shopify_events (release profile)"
task :compile do
  root = File.expand_path("..", __dir__)
  build_dir = File.join(root, "tmp", "ext")
  mkdir_p build_dir
  ENV["CARGO_TARGET_DIR"] ||= File.join(root, "target")
  Dir.chdir(build_dir) do
    ruby File.join(root, "ext", "shopify_events", "extconf.rb")
    sh "make"
    sh "make", "install", "sitearchdir=#{File.join(root, "lib")}"
  end
end
