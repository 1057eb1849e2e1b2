# frozen_string_literal: true

require "rspec/expectations"

module ShopifyEvents
  module Testing
    # RSpec block matcher (an event deferred to a database commit counts
    # once its transaction committed inside the block):
    #
    #   expect { post "/orders" }.to emit_event("orders.created").with(id: 1)
    #   expect { ... }.to emit_event("orders.created").with(hash_including("id" => 1)).with_key("shop-1").once
    #   expect { ... }.not_to emit_event("orders.deleted")
    class EmitEventMatcher
      include ::RSpec::Matchers::Composable

      def initialize(topic)
        @topic = topic
        @options = {}
        @count = nil
      end

      def with(payload = nil, **keywords)
        @options[:payload] = payload.nil? ? keywords : payload
        self
      end

      def with_key(key)
        @options[:key] = key
        self
      end

      def with_headers(headers)
        @options[:headers] = headers
        self
      end

      def exactly(count)
        @count = count
        self
      end

      def once = exactly(1)
      def twice = exactly(2)
      def times = self

      def supports_block_expectations? = true
      def supports_value_expectations? = false

      def matches?(block)
        capture(block)
        @count ? @matched.size == @count : !@matched.empty?
      end

      def does_not_match?(block)
        capture(block)
        @count ? @matched.size != @count : @matched.empty?
      end

      def failure_message
        expectation.failure_message(@events, count: @count)
      end

      def failure_message_when_negated
        "expected no #{expectation.description(article: false)}, #{EventExpectation.describe(@matched)}"
      end

      def description
        "emit #{expectation.description}"
      end

      private

      def expectation
        @expectation ||= EventExpectation.new(
          @topic, **@options,
                  comparator: ->(expected, actual) { ::RSpec::Support::FuzzyMatcher.values_match?(expected, actual) }
        )
      end

      def capture(block)
        @events = Testing.capture_events(&block)
        @matched = expectation.select(@events)
      end
    end

    # RSpec block matcher for an event emitted in a transaction that rolled
    # back, and so never sent (takes the same chains as emit_event):
    #
    #   expect { create_order_and_fail }.to roll_back_event("orders.created").with(id: 1)
    class RollBackEventMatcher < EmitEventMatcher
      def matches?(block)
        capture(block)
        @rolled_back = @count ? @matched.size == @count : !@matched.empty?
        @rolled_back && @sent.empty?
      end

      def does_not_match?(block)
        capture(block)
        @count ? @matched.size != @count : @matched.empty?
      end

      def failure_message
        return expectation.rolled_back_failure_message(@events, count: @count) unless @rolled_back

        "expected #{expectation.description} to be rolled back and not sent, " \
          "#{EventExpectation.describe(@sent, verb: "but")}"
      end

      def failure_message_when_negated
        "expected no #{expectation.description(article: false)} to be rolled back, " \
          "#{EventExpectation.describe(@matched, verb: "but", action: "rolled back")}"
      end

      def description
        "roll back #{expectation.description}"
      end

      private

      def capture(block)
        capture = Testing.capture(&block)
        @events = capture.rolled_back_events
        @matched = expectation.select(@events)
        @sent = expectation.select(capture.events)
      end
    end

    # Included into every RSpec example group.
    module Matchers
      # A block matcher for an event on `topic`; see EmitEventMatcher.
      def emit_event(topic)
        EmitEventMatcher.new(topic)
      end

      # A block matcher for an event on `topic` whose transaction rolled
      # back; see RollBackEventMatcher.
      def roll_back_event(topic)
        RollBackEventMatcher.new(topic)
      end
    end
  end
end

RSpec.configure { |config| config.include(ShopifyEvents::Testing::Matchers) } if RSpec.respond_to?(:configure)
