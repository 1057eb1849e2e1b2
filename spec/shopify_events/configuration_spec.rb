# frozen_string_literal: true

RSpec.describe ShopifyEvents::Configuration do
  def from_env(env)
    described_class.from_env(env)
  end

  it "defaults to the sysv transport on the documented queue key" do
    config = from_env({})
    expect(config.transport).to eq(:sysv)
    expect(config.queue_key).to eq(0x5345_5600)
    expect(config.queue_permissions).to eq(0o660)
  end

  it "takes its defaults from the extension, where the drain and the proxy take theirs" do
    defaults = ShopifyEvents::Native::DEFAULTS
    expect(defaults).to be_frozen
    config = from_env({})
    expect([config.queue_key, config.queue_permissions, config.flush_timeout, config.direct_buffer])
      .to eq(defaults.values_at(:queue_key, :queue_permissions, :flush_timeout, :direct_buffer))
    expect(defaults).to include(state_dir: "/var/lib/shopify-events", spool_dir: "/var/spool/shopify-events",
                                max_event_bytes: 1 << 20, socket_max_buffered_events: 100_000)
  end

  it "reads SHOPIFY_EVENTS_TRANSPORT" do
    expect(from_env("SHOPIFY_EVENTS_TRANSPORT" => "test").transport).to eq(:test)
    expect(from_env("SHOPIFY_EVENTS_TRANSPORT" => " SYSV ").transport).to eq(:sysv)
  end

  it "rejects an unknown transport, naming it and the choices" do
    expect { from_env("SHOPIFY_EVENTS_TRANSPORT" => "kafka") }
      .to raise_error(ShopifyEvents::ConfigurationError,
                      /unknown transport "kafka".*use one of sysv, spool, socket, direct, test, log/)
  end

  it "reads SHOPIFY_EVENTS_QUEUE_KEY in decimal or 0x-hex" do
    expect(from_env("SHOPIFY_EVENTS_QUEUE_KEY" => "1234").queue_key).to eq(1234)
    expect(from_env("SHOPIFY_EVENTS_QUEUE_KEY" => "0xDEADBEEF").queue_key).to eq(0xDEAD_BEEF)
    expect(from_env("SHOPIFY_EVENTS_QUEUE_KEY" => "0644").queue_key).to eq(644)
  end

  ["abc", "0x", "-1", "0", "0x100000000", "12.5"].each do |value|
    it "rejects the queue key #{value.inspect} with a message naming the variable" do
      expect { from_env("SHOPIFY_EVENTS_QUEUE_KEY" => value) }
        .to raise_error(ShopifyEvents::ConfigurationError, /#{Regexp.escape(value.inspect)}.*SHOPIFY_EVENTS_QUEUE_KEY/)
    end
  end

  it "reads SHOPIFY_EVENTS_QUEUE_PERMISSIONS as octal" do
    expect(from_env("SHOPIFY_EVENTS_QUEUE_PERMISSIONS" => "0600").queue_permissions).to eq(0o600)
    expect { from_env("SHOPIFY_EVENTS_QUEUE_PERMISSIONS" => "rw") }.to raise_error(ShopifyEvents::ConfigurationError)
  end

  it "ignores blank variables" do
    expect(from_env("SHOPIFY_EVENTS_TRANSPORT" => " ", "SHOPIFY_EVENTS_QUEUE_KEY" => "").queue_key).to eq(0x5345_5600)
  end

  describe "ShopifyEvents.configure" do
    it "rebuilds the transport with the new settings" do
      ShopifyEvents.configure { |c| c.transport = :test }
      expect(ShopifyEvents.transport).to be_a(ShopifyEvents::Transports::Test)

      ShopifyEvents.configure { |c| c.transport = :sysv }
      expect(ShopifyEvents.transport).to be_a(ShopifyEvents::Transports::Sysv)
    end

    it "reads the environment lazily, on first use" do
      ENV["SHOPIFY_EVENTS_TRANSPORT"] = "test"
      ShopifyEvents.reset!
      expect(ShopifyEvents.transport).to be_a(ShopifyEvents::Transports::Test)
    ensure
      ENV.delete("SHOPIFY_EVENTS_TRANSPORT")
    end
  end
end
