# frozen_string_literal: true

module ShopifyEvents
  module Transports
    # Captures events in memory for specs. Each event is validated and
    # encoded exactly as `sysv` would (and held to its size limit:
    # `max_event_bytes` when the configuration has a spool, the host's
    # message size limit without one), then decoded into a
    # ShopifyEvents::Event. Events deferred to a
    # database commit arrive with `send_envelope` when their transaction
    # commits; those their transaction rolled back arrive with
    # `rolled_back` and are kept apart (`rolled_back_events`).
    class Test
      def initialize(max_event_bytes: nil)
        @events = []
        @rolled_back = []
        @mutex = Mutex.new
        @size_limit = max_event_bytes || Native.message_size_limit
        @limit_setting = max_event_bytes ? "max_event_bytes" : "the sysctl kernel.msgmax"
      end

      def emit(topic, payload, key, headers)
        send_envelope(Native.encode(topic, payload, key, headers))
      end
      alias emit! emit

      # Captures an envelope encoded earlier (a deferred event at its commit).
      def send_envelope(bytes)
        check_size(bytes)
        event = Event.decode(bytes)
        @mutex.synchronize { @events << event }
        event.id
      end
      alias send_envelope! send_envelope

      # Records an event its transaction rolled back (it was never sent).
      def rolled_back(bytes)
        event = Event.decode(bytes)
        @mutex.synchronize { @rolled_back << event }
        nil
      end

      # The size limit deferred events are held to when emitted.
      def envelope_limit
        @size_limit
      end

      # A copy of the events captured so far, oldest first.
      def events
        @mutex.synchronize { @events.dup }
      end

      # A copy of the events whose transaction rolled back, oldest first.
      def rolled_back_events
        @mutex.synchronize { @rolled_back.dup }
      end

      def clear
        @mutex.synchronize do
          @events.clear
          @rolled_back.clear
        end
      end

      def stats
        { transport: :test, emitted: @mutex.synchronize { @events.size }, dropped: 0 }
      end

      private

      def check_size(bytes)
        return if bytes.bytesize <= @size_limit

        raise PayloadTooLarge, "event envelope is #{bytes.bytesize} bytes, larger than the #{@size_limit}-byte " \
                               "limit set by #{@limit_setting}; send a smaller payload, or raise it"
      end
    end
  end
end
