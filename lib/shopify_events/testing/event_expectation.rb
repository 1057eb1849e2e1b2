# frozen_string_literal: true

require "shopify_events/transports/log"

module ShopifyEvents
  module Testing
    # What an assertion or matcher expects of an event, and the failure
    # messages listing what was emitted instead. Expected payloads given as
    # Hash or Array are encoded and decoded like an emitted payload (so
    # symbol keys, Symbols and Times compare as they arrive); a String payload
    # compares as bytes; anything else (a Proc, Regexp or RSpec matcher) is
    # matched against the decoded payload with `===` or the comparator.
    class EventExpectation
      # Matches any value.
      ANY = Object.new.tap { |any| def any.inspect = "anything" }.freeze

      attr_reader :topic, :payload, :key, :headers

      def initialize(topic, payload: ANY, key: ANY, headers: ANY, comparator: nil)
        @topic = topic.to_s
        @payload = payload
        @expected_data = normalize(payload)
        @key = key
        @headers = headers
        @comparator = comparator || ->(expected, actual) { expected === actual } # rubocop:disable Style/CaseEquality
      end

      def matches?(event)
        event.topic == @topic && payload_matches?(event) && key_matches?(event) && headers_matches?(event)
      end

      def select(events)
        events.select { |event| matches?(event) }
      end

      def description(article: true)
        parts = ["#{"an " if article}event on #{@topic.inspect}"]
        parts << "with payload #{@payload.inspect}" unless ANY.equal?(@payload)
        parts << "with key #{@key.inspect}" unless ANY.equal?(@key)
        parts << "with headers including #{@headers.inspect}" unless ANY.equal?(@headers)
        parts.join(" ")
      end

      # "expected ...; emitted instead: ..." for `events`.
      def failure_message(events, count: nil)
        wanted = count ? "#{count} of #{description}" : description
        "expected #{wanted}, #{Testing::EventExpectation.describe(events, verb: "but")}"
      end

      # "expected ... to be rolled back; rolled back instead: ..." for `events`.
      def rolled_back_failure_message(events, count: nil)
        wanted = count ? "#{count} of #{description}" : description
        "expected #{wanted} to be emitted in a transaction that rolled back, " \
          "#{Testing::EventExpectation.describe(events, verb: "but", action: "rolled back")}"
      end

      # Lists `events`, one per line, for failure messages.
      def self.describe(events, verb: "but", action: "emitted")
        return "#{verb} no events were #{action}" if events.empty?

        lines = events.map.with_index(1) { |event, i| "  #{i}. #{Transports::Log.describe(event)}" }
        "#{verb} #{events.size == 1 ? "1 event was" : "#{events.size} events were"} #{action}:\n#{lines.join("\n")}"
      end

      private

      def normalize(payload)
        return payload unless payload.is_a?(Hash) || payload.is_a?(Array)

        Event.decode(Native.encode("expected", payload, nil, nil)).data
      rescue TypeError, ArgumentError
        # Holds matchers (RSpec's `kind_of(...)`): compare with string keys.
        stringify_keys(payload)
      end

      def stringify_keys(value)
        case value
        when Hash then value.to_h { |k, v| [k.is_a?(Symbol) ? k.to_s : k, stringify_keys(v)] }
        when Array then value.map { |v| stringify_keys(v) }
        else value
        end
      end

      def payload_matches?(event)
        return true if ANY.equal?(@payload)
        return event.payload.b == @payload.b if @payload.is_a?(String)

        @comparator.call(@expected_data, event.data)
      rescue JSON::ParserError
        false
      end

      def key_matches?(event)
        return true if ANY.equal?(@key)
        return event.key.nil? if @key.nil?

        !event.key.nil? && event.key.b == @key.to_s.b
      end

      def headers_matches?(event)
        return true if ANY.equal?(@headers)

        @headers.all? { |name, value| event.headers[name.to_s]&.b == value.to_s.b }
      end
    end
  end
end
