# frozen_string_literal: true

require "active_support/notifications"

RSpec.describe ShopifyEvents::Instrumentation do
  let(:received) { [] }
  let(:subscriptions) { [] }

  def subscribe(name)
    subscriptions << ActiveSupport::Notifications.subscribe(name) do |*args|
      received << ActiveSupport::Notifications::Event.new(*args)
    end
  end

  after { subscriptions.each { |s| ActiveSupport::Notifications.unsubscribe(s) } }

  it "publishes emit.shopify_events with topic, transport, bytes and event id" do
    use_sysv_queue
    subscribe("emit.shopify_events")
    id = ShopifyEvents.emit("orders.created", { id: 1 })
    expect(received.map(&:payload)).to eq([{ topic: "orders.created", transport: :sysv, event_id: id,
                                             bytes: ShopifyEvents::Native.encode("orders.created", { id: 1 }, nil,
                                                                                 nil).bytesize }])
  end

  it "publishes drop.shopify_events with the reason when emit drops an event" do
    use_sysv_queue(logger: Logger.new(StringIO.new)).capacity = 16_384
    subscribe("drop.shopify_events")
    results = Array.new(100) { ShopifyEvents.emit("orders.created", "x" * 1000) }
    expect(results).to include(nil)
    expect(received.size).to eq(results.count(nil))
    expect(received.first.payload).to include(topic: "orders.created", transport: :sysv, event_id: nil)
    expect(received.first.payload[:error]).to match(/full/i)
  end

  it "publishes error.shopify_events with the exception, and re-raises it" do
    use_sysv_queue
    subscribe("error.shopify_events")
    expect { ShopifyEvents.emit("bad topic", "x") }.to raise_error(ShopifyEvents::InvalidTopic)
    expect(received.first.payload).to include(topic: "bad topic", transport: :sysv,
                                              error: an_instance_of(ShopifyEvents::InvalidTopic))
  end

  it "publishes nothing and still emits when nobody subscribes" do
    queue = use_sysv_queue
    expect(ShopifyEvents.emit("orders.created", "x")).to be_a(String)
    expect(drain_events(queue).size).to eq(1)
  end
end
