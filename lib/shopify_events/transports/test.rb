# frozen_string_literal: true

module ShopifyEvents
  module Transports
    # Captures events in memory for specs. Each event is validated and
    # encoded exactly as `sysv` would (and held to its size limit:
    # `max_event_bytes` when the configuration has a spool, the host's
    # message size limit without one), then decoded into a
    # ShopifyEvents::Event.
    class Test
      def initialize(max_event_bytes: nil)
        @events = []
        @mutex = Mutex.new
        @size_limit = max_event_bytes || Native.message_size_limit
        @limit_setting = max_event_bytes ? "max_event_bytes" : "the sysctl kernel.msgmax"
      end

      def emit(topic, payload, key, headers)
        bytes = Native.encode(topic, payload, key, headers)
        if bytes.bytesize > @size_limit
          raise PayloadTooLarge, "event envelope is #{bytes.bytesize} bytes, larger than the #{@size_limit}-byte " \
                                 "limit set by #{@limit_setting}; send a smaller payload, or raise it"
        end
        event = Event.decode(bytes)
        @mutex.synchronize { @events << event }
        event.id
      end
      alias emit! emit

      # A copy of the events captured so far, oldest first.
      def events
        @mutex.synchronize { @events.dup }
      end

      def clear
        @mutex.synchronize { @events.clear }
      end

      def stats
        { transport: :test, emitted: @mutex.synchronize { @events.size }, dropped: 0 }
      end
    end
  end
end
