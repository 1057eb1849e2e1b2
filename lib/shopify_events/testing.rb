# frozen_string_literal: true

require "shopify_events"
require "shopify_events/testing/capture"
require "shopify_events/testing/event_expectation"

module ShopifyEvents
  # Test helpers (`require "shopify_events/testing"`):
  #
  #   events = ShopifyEvents::Testing.capture_events { OrderCreator.call }
  #   assert_event_emitted("orders.created", payload: { id: 1 }, key: "shop-1") { ... }   # Minitest
  #   expect { ... }.to emit_event("orders.created").with(id: 1)                         # RSpec
  #
  # The Minitest assertions load only where Minitest is loaded (and are
  # included into Minitest::Test, so ActiveSupport::TestCase has them); the
  # RSpec matcher loads only where RSpec is loaded (and is included into
  # every example group).
  module Testing
    class << self
      # Runs the block with a capturing transport in place of the current one
      # (for every thread) and returns the events emitted meanwhile, oldest
      # first. Events are validated and encoded as for `sysv` and never sent.
      # Nested captures also report their events to the enclosing capture.
      def capture_events(&block)
        raise ArgumentError, "capture_events needs a block" unless block

        outer = ShopifyEvents.transport
        capture = Capture.new
        ShopifyEvents.with_transport(capture, &block)
        capture.events
      ensure
        outer.record_all(capture.events) if capture && outer.is_a?(Capture)
      end

      # The events the current `test` transport (or capture) holds.
      def emitted_events
        transport = ShopifyEvents.transport
        return transport.events if transport.respond_to?(:events)

        raise ArgumentError, "no captured events: the transport is #{ShopifyEvents.config.transport}; pass a " \
                             "block to capture its events, or use the test transport (SHOPIFY_EVENTS_TRANSPORT=test)"
      end

      # Forgets the events the `test` transport captured (a no-op for others).
      def clear_events
        return unless ShopifyEvents.config.transport == :test

        transport = ShopifyEvents.transport
        transport.clear if transport.respond_to?(:clear)
      end
    end
  end
end

require "shopify_events/testing/minitest" if defined?(::Minitest::Test)
require "shopify_events/testing/rspec" if defined?(::RSpec)
