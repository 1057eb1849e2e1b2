# frozen_string_literal: true

require "open3"
require "rbconfig"
require "tmpdir"

RSpec.describe "configuration of a Rails app" do
  def yaml(text)
    path = File.join(@dir, "shopify_events.yml")
    File.write(path, text)
    path
  end

  around { |example| Dir.mktmpdir("rails-config") { |dir| (@dir = dir) && example.run } }

  it "defaults the transport by Rails environment: test, log, sysv" do
    expect(%w[test development production staging].map do |env|
      ShopifyEvents::Configuration.for_rails(env, env: {}).transport
    end).to eq(%i[test log sysv sysv])
  end

  it "reads the environment's section of the YAML file, rendered with ERB" do
    path = yaml(<<~YAML)
      production:
        transport: direct
        brokers: <%= "kafka-" + "1:9092" %>
        kafka:
          compression.type: zstd
        direct_buffer: 500
    YAML
    config = ShopifyEvents::Configuration.for_rails("production", yaml_path: path, env: {})
    expect([config.transport, config.brokers, config.kafka, config.direct_buffer])
      .to eq([:direct, "kafka-1:9092", { "compression.type" => "zstd" }, 500])
  end

  it "lets SHOPIFY_EVENTS_* environment variables win over the file" do
    path = yaml("production:\n  transport: direct\n  brokers: from-file:9092\n")
    config = ShopifyEvents::Configuration.for_rails("production", yaml_path: path,
                                                                  env: { "SHOPIFY_EVENTS_BROKERS" => "from-env:9092" })
    expect([config.transport, config.brokers]).to eq([:direct, "from-env:9092"])
  end

  it "rejects an unknown setting, naming it and the file" do
    path = yaml("test:\n  tranport: log\n")
    expect { ShopifyEvents::Configuration.for_rails("test", yaml_path: path, env: {}) }
      .to raise_error(ShopifyEvents::ConfigurationError, /unknown setting "tranport" in .*shopify_events.yml \(test\)/)
  end

  it "works without a YAML file" do
    config = ShopifyEvents::Configuration.for_rails("development", yaml_path: File.join(@dir, "none.yml"), env: {})
    expect(config.transport).to eq(:log)
  end

  it "generates config/shopify_events.yml with `rails generate shopify_events:install`" do
    script = 'require "rails/generators"; require "generators/shopify_events/install/install_generator"; ' \
             "ShopifyEvents::Generators::InstallGenerator.start([], destination_root: ARGV[0])"
    lib = File.join(SpecProcesses::ROOT, "lib")
    output, status = Open3.capture2e(RbConfig.ruby, "-I", lib, "-e", script, @dir)
    expect(status).to be_success, output
    path = File.join(@dir, "config", "shopify_events.yml")
    expect(ShopifyEvents::Configuration.for_rails("test", yaml_path: path, env: {}).transport).to eq(:test)
    expect(ShopifyEvents::Configuration.for_rails("development", yaml_path: path, env: {}).transport).to eq(:log)
    expect(File.read(path)).to include('<%= ENV.fetch("KAFKA_BROKERS"')
  end
end
