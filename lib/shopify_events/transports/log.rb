# frozen_string_literal: true

module ShopifyEvents
  module Transports
    # Writes each event to the logger (Rails.logger under Rails), the
    # development default. Events are validated and encoded exactly as
    # `sysv` would, so a bad topic or payload fails in development too.
    class Log
      def initialize(logger:)
        @logger = logger
        @emitted = 0
      end

      def emit(topic, payload, key, headers)
        send_envelope(Native.encode(topic, payload, key, headers))
      end
      alias emit! emit

      # Logs an envelope encoded earlier (an event deferred to its commit).
      def send_envelope(bytes)
        event = Event.decode(bytes)
        @logger.info { "shopify_events: emit #{self.class.describe(event)} id=#{event.id}" }
        @emitted += 1
        event.id
      end
      alias send_envelope! send_envelope

      # Logs that a deferred event's transaction rolled back.
      def rolled_back(bytes)
        event = Event.decode(bytes)
        @logger.info { "shopify_events: rolled back #{self.class.describe(event)} id=#{event.id}" }
        nil
      end

      def stats
        { transport: :log, emitted: @emitted, dropped: 0 }
      end

      # One line for an event: topic, key, headers, payload (JSON as is).
      def self.describe(event)
        parts = [event.topic]
        parts << "key=#{event.key.inspect}" if event.key
        parts << "headers=#{event.headers.inspect}" unless event.headers.empty?
        parts << "payload=#{event.json? ? event.payload : event.payload.inspect}"
        parts.join(" ")
      end
    end
  end
end
