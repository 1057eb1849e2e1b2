# frozen_string_literal: true

require "rbconfig"

desc "Build the native extension into lib/shopify_events (release profile)"
task :compile do
  root = File.expand_path("..", __dir__)
  build_dir = File.join(root, "tmp", "ext")
  staged = File.join(build_dir, "install")
  mkdir_p build_dir
  ENV["CARGO_TARGET_DIR"] ||= File.join(root, "target")
  # RubyGems sets SOURCE_DATE_EPOCH (to the current time) when it builds the
  # source gem's extension, and the cc crate rebuilds every C dependency,
  # librdkafka's included, whenever it changes. One fixed value, RubyGems'
  # own default since 3.6 (1980-01-02), lets this build and the source gem
  # spec's share target/ (the spec passes the same value). No C dependency
  # embeds the date.
  ENV["SOURCE_DATE_EPOCH"] ||= "315619200"
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
