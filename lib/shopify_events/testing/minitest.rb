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

      # Asserts an event on `topic` (with the given payload, key and headers,
      # if given) was emitted inside a transaction that rolled back, and so
      # was not sent: no matching event was sent. Returns the matching
      # rolled-back events.
      def assert_event_rolled_back(topic, payload: EventExpectation::ANY, key: EventExpectation::ANY,
                                   headers: EventExpectation::ANY, times: nil, &block)
        rolled_back, sent = rolled_back_and_sent(block)
        expectation = EventExpectation.new(topic, payload: payload, key: key, headers: headers)
        matched = expectation.select(rolled_back)
        passed = times ? matched.size == times : !matched.empty?
        assert(passed, -> { expectation.rolled_back_failure_message(rolled_back, count: times) })
        wrongly_sent = expectation.select(sent)
        assert(wrongly_sent.empty?, lambda {
          "expected #{expectation.description} to be rolled back and not sent, " \
            "#{EventExpectation.describe(wrongly_sent, verb: "but")}"
        })
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

      # [rolled back, sent] events: the block's, or the `test` transport's.
      def rolled_back_and_sent(block)
        return [Testing.rolled_back_events, Testing.emitted_events] unless block

        capture = Testing.capture(&block)
        [capture.rolled_back_events, capture.events]
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
