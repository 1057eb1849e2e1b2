# frozen_string_literal: true

module ShopifyEvents
  module Transports
    # Captures events in memory for specs. Each event is validated and
    # encoded exactly as `sysv` would (and held to the host's message size
    # limit), then decoded into a ShopifyEvents::Event.
    class Test
      def initialize
        @events = []
        @mutex = Mutex.new
        @size_limit = Native.message_size_limit
      end

      def emit(topic, payload, key, headers)
        bytes = Native.encode(topic, payload, key, headers)
        if bytes.bytesize > @size_limit
          raise PayloadTooLarge, "event envelope is #{bytes.bytesize} bytes, larger than the #{@size_limit}-byte " \
                                 "limit set by the sysctl kernel.msgmax; send a smaller payload, or raise it on " \
                                 "the host (`sysctl -w kernel.msgmax=BYTES`)"
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
