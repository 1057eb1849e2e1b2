# frozen_string_literal: true

require "tmpdir"

RSpec.describe "the spool's settings" do
  def from_env(env)
    ShopifyEvents::Configuration.from_env(env)
  end

  it "default to the core's values: the host spool directory, page cache, 1 MiB events" do
    config = from_env({})
    defaults = ShopifyEvents::Native::DEFAULTS
    expect(config.spool_dir).to eq(defaults.fetch(:spool_dir)).and eq("/var/spool/shopify-events")
    expect(config.spool_sync).to eq(:page_cache)
    expect(defaults.fetch(:spool_sync)).to eq("page_cache")
    expect(config.max_event_bytes).to eq(defaults.fetch(:max_event_bytes)).and eq(1 << 20)
    expect(config.spool_max_bytes).to be_nil
    expect(config.spool_settings).to eq(dir: "/var/spool/shopify-events", max_bytes: nil, sync: :page_cache,
                                        max_event_bytes: 1 << 20)
  end

  it "are read from SHOPIFY_EVENTS_SPOOL_DIR, _SPOOL_MAX_BYTES, _SPOOL_SYNC and _MAX_EVENT_BYTES" do
    config = from_env("SHOPIFY_EVENTS_SPOOL_DIR" => " /srv/spool ", "SHOPIFY_EVENTS_SPOOL_MAX_BYTES" => "8GiB",
                      "SHOPIFY_EVENTS_SPOOL_SYNC" => "interval:250", "SHOPIFY_EVENTS_MAX_EVENT_BYTES" => "512KiB")
    expect(config.spool_settings).to eq(dir: "/srv/spool", max_bytes: 8 << 30, sync: 250, max_event_bytes: 512 << 10)
    expect(from_env("SHOPIFY_EVENTS_SPOOL_SYNC" => "ALWAYS").spool_sync).to eq(:always)
    expect(from_env("SHOPIFY_EVENTS_SPOOL_SYNC" => "page_cache").spool_sync).to eq(:page_cache)
    expect(from_env("SHOPIFY_EVENTS_SPOOL_MAX_BYTES" => "1G").spool_max_bytes).to eq(1_000_000_000)
  end

  it "are settable as keywords, with Integers and Symbols" do
    ShopifyEvents.configure do |c|
      c.spool_dir = "/tmp/spool"
      c.spool_max_bytes = 1 << 30
      c.spool_sync = 100
      c.max_event_bytes = 2 << 20
    end
    expect(ShopifyEvents.config.spool_settings).to eq(dir: "/tmp/spool", max_bytes: 1 << 30, sync: 100,
                                                      max_event_bytes: 2 << 20)
    ShopifyEvents.config.spool_sync = :always
    expect(ShopifyEvents.config.spool_sync).to eq(:always)
  end

  it "turn the spool off with spool_dir nil, false or \"off\"" do
    expect(from_env("SHOPIFY_EVENTS_SPOOL_DIR" => "off").spool_dir).to be_nil
    config = from_env({})
    config.spool_dir = false
    expect(config.spool_settings).to be_nil
    config.spool_dir = nil
    expect(config.spool_dir).to be_nil
  end

  it "reject bad values with a ConfigurationError naming the value, the variable and the forms" do
    {
      "SHOPIFY_EVENTS_SPOOL_DIR" => ["spool", /spool_dir "spool" \(SHOPIFY_EVENTS_SPOOL_DIR\) is not an absolute path/],
      "SHOPIFY_EVENTS_SPOOL_MAX_BYTES" => ["lots", /spool_max_bytes \(SHOPIFY_EVENTS_SPOOL_MAX_BYTES\): invalid size/],
      "SHOPIFY_EVENTS_SPOOL_SYNC" => ["sometimes", /spool_sync "sometimes" .* use page_cache, always, or interval:MS/],
      "SHOPIFY_EVENTS_MAX_EVENT_BYTES" => ["2GiB", /max_event_bytes "2GiB" .* out of range: use 1KiB to 1GiB/]
    }.each do |variable, (value, message)|
      expect { from_env(variable => value) }.to raise_error(ShopifyEvents::ConfigurationError, message)
    end
    expect { from_env("SHOPIFY_EVENTS_SPOOL_SYNC" => "interval:0") }.to raise_error(ShopifyEvents::ConfigurationError)
    expect { from_env("SHOPIFY_EVENTS_MAX_EVENT_BYTES" => "100") }.to raise_error(ShopifyEvents::ConfigurationError)
  end

  it "are accepted in config/shopify_events.yml" do
    Dir.mktmpdir do |dir|
      path = File.join(dir, "shopify_events.yml")
      File.write(path, <<~YAML)
        production:
          spool_dir: /srv/events-spool
          spool_max_bytes: 4GiB
          spool_sync: interval:1000
          max_event_bytes: 2MiB
      YAML
      config = ShopifyEvents::Configuration.for_rails("production", yaml_path: path, env: {})
      expect(config.spool_settings).to eq(dir: "/srv/events-spool", max_bytes: 4 << 30, sync: 1000,
                                          max_event_bytes: 2 << 20)
    end
  end

  it "reach the native transports: a spool transport writes into spool_dir, held to max_event_bytes" do
    sink = use_transport(:spool, max_event_bytes: "4KiB", spool_sync: "interval:50")
    expect(ShopifyEvents.emit("t", "x" * 3000)).to be_a(String)
    expect { ShopifyEvents.emit("t", "x" * 5000) }.to raise_error(ShopifyEvents::PayloadTooLarge, /\(4096\)/)
    expect(sink.events.map(&:payload)).to eq(["x" * 3000])
    expect(ShopifyEvents.flush).to be(true)
  end

  it "make the spool transport refuse to start without a spool directory" do
    ShopifyEvents.configure do |c|
      c.transport = :spool
      c.spool_dir = "off"
    end
    expect { ShopifyEvents.emit("t", "x") }
      .to raise_error(ShopifyEvents::ConfigurationError, /spool transport needs spool_dir \(SHOPIFY_EVENTS_SPOOL_DIR\)/)
  end
end
