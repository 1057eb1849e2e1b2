# frozen_string_literal: true

require "rbconfig"

desc "Build the native extension into lib/shopify_events (release profile)"
task :compile do
  root = File.expand_path("..", __dir__)
  build_dir = File.join(root, "tmp", "ext")
  staged = File.join(build_dir, "install")
  mkdir_p build_dir
  ENV["CARGO_TARGET_DIR"] ||= File.join(root, "target")
  Dir.chdir(build_dir) do
    ruby File.join(root, "ext", "shopify_events", "extconf.rb")
    sh "make"
    sh "make", "install", "sitearchdir=#{staged}"
  end
  # Renamed into lib/, never copied over the old files: a process that has
  # the old extension mapped (a spec that runs `rake native:gem`) or runs
  # the old command keeps its own intact copy.
  Dir[File.join(staged, "shopify_events", "*")].each do |file|
    mv file, File.join(root, "lib", "shopify_events", File.basename(file)), verbose: false
  end
end
