# frozen_string_literal: true

require "shopify_events"
require "shopify_events/testing/capture"
require "shopify_events/testing/event_expectation"

module ShopifyEvents
  # Test helpers (`require "shopify_events/testing"`):
  #
  #   events = ShopifyEvents::Testing.capture_events { OrderCreator.call }
  #   assert_event_emitted("orders.created", payload: { id: 1 }, key: "shop-1") { ... }   # Minitest
  #   assert_event_rolled_back("orders.created") { ... }                                 # Minitest
  #   expect { ... }.to emit_event("orders.created").with(id: 1)                         # RSpec
  #   expect { ... }.to roll_back_event("orders.created")                                # RSpec
  #
  # An event emitted inside an ActiveRecord transaction is seen only once
  # the transaction committed (that is when it is sent); one whose
  # transaction rolled back is never seen as emitted, and the rolled-back
  # helpers find it instead. Under `use_transactional_tests`, the app's own
  # `transaction` blocks count as committed when they end, as for Rails'
  # after_commit callbacks (README, "Testing").
  #
  # The Minitest assertions load only where Minitest is loaded (and are
  # included into Minitest::Test, so ActiveSupport::TestCase has them); the
  # RSpec matchers load only where RSpec is loaded (and are included into
  # every example group).
  module Testing
    class << self
      # Runs the block with a capturing transport in place of the current one
      # (for every thread) and returns the events emitted meanwhile, oldest
      # first. Events are validated and encoded as for `sysv` and never sent.
      # Nested captures also report their events to the enclosing capture.
      def capture_events(&block)
        capture(&block).events
      end

      # Like capture_events, but returns the Capture itself: its `events`
      # (sent, including deferred events whose transaction committed in the
      # block) and `rolled_back_events`.
      def capture(&block)
        raise ArgumentError, "capture needs a block" unless block

        outer = ShopifyEvents.transport
        capture = Capture.new
        ShopifyEvents.with_transport(capture, &block)
        capture
      ensure
        outer.record_all(capture) if capture && outer.is_a?(Capture)
      end

      # The events the current `test` transport (or capture) holds whose
      # transaction rolled back.
      def rolled_back_events
        transport = ShopifyEvents.transport
        return transport.rolled_back_events if transport.respond_to?(:rolled_back_events)

        raise ArgumentError, "no captured events: the transport is #{ShopifyEvents.config.transport}; pass a " \
                             "block to capture its events, or use the test transport (SHOPIFY_EVENTS_TRANSPORT=test)"
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
