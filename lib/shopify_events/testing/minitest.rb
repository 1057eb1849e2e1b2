# frozen_string_literal: true

module ShopifyEvents
  module Testing
    # Minitest assertions, included into Minitest::Test (and so into
    # ActiveSupport::TestCase). With a block they capture the events the
    # block emits; without one they look at the `test` transport's events,
    # which are cleared before each test.
    module Assertions
      # Asserts an event on `topic` (with the given payload, key and headers,
      # if given) was emitted; `times:` asserts the exact number of matches.
      # Returns the matching events.
      def assert_event_emitted(topic, payload: EventExpectation::ANY, key: EventExpectation::ANY,
                               headers: EventExpectation::ANY, times: nil, &block)
        events = block ? Testing.capture_events(&block) : Testing.emitted_events
        expectation = EventExpectation.new(topic, payload: payload, key: key, headers: headers)
        matched = expectation.select(events)
        passed = times ? matched.size == times : !matched.empty?
        assert(passed, -> { expectation.failure_message(events, count: times) })
        matched
      end

      # Asserts no event (or none on `topic`) was emitted.
      def assert_no_events_emitted(topic = nil, &block)
        events = block ? Testing.capture_events(&block) : Testing.emitted_events
        relevant = topic ? events.select { |event| event.topic == topic.to_s } : events
        assert(relevant.empty?, lambda {
          "expected no events#{" on #{topic.to_s.inspect}" if topic}, #{EventExpectation.describe(relevant)}"
        })
      end

      # Clears the `test` transport's events before each test.
      def before_setup
        super
        Testing.clear_events
      end
    end
  end
end

Minitest::Test.include(ShopifyEvents::Testing::Assertions)
