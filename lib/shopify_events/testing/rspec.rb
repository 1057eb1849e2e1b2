# frozen_string_literal: true

require "rspec/expectations"

module ShopifyEvents
  module Testing
    # RSpec block matcher:
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

    # Included into every RSpec example group.
    module Matchers
      # A block matcher for an event on `topic`; see EmitEventMatcher.
      def emit_event(topic)
        EmitEventMatcher.new(topic)
      end
    end
  end
end

RSpec.configure { |config| config.include(ShopifyEvents::Testing::Matchers) } if RSpec.respond_to?(:configure)
