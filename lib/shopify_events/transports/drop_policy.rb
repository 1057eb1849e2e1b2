# frozen_string_literal: true

module ShopifyEvents
  module Transports
    # The drop policy of the transports that hand events to native code
    # (sysv, socket, direct): `emit` returns nil when the transport cannot
    # take an event (counted natively in stats[:dropped]) and logs the first
    # drop of a burst and the recovery after it, never one line per event;
    # `emit!` raises instead. `send_envelope(bytes)` / `send_envelope!` do
    # the same for an envelope encoded earlier (events deferred to a
    # database commit, outbox rows). Includers set @native, @logger and
    # @dropping = false.
    module DropPolicy
      def emit(topic, payload, key, headers)
        taken(@native.emit(topic, payload, key, headers))
      end

      def emit!(topic, payload, key, headers)
        @native.emit!(topic, payload, key, headers)
      end

      # Sends an envelope from Native.encode_event as it is (same id and
      # emit time); raises DecodeError if `bytes` is not one intact envelope.
      def send_envelope(bytes)
        taken(@native.send_envelope(bytes))
      end

      def send_envelope!(bytes)
        @native.send_envelope!(bytes)
      end

      private

      def taken(id)
        if id
          recovered if @dropping
          return id
        end
        dropped
      end

      # Why the last emit gave up.
      def drop_reason
        @native.last_error
      end

      def dropped
        unless @dropping
          @dropping = true
          @logger.warn("shopify_events: dropping events: #{drop_reason}. Further drops are counted in " \
                       "ShopifyEvents.stats[:dropped] and logged again once emitting recovers.")
        end
        nil
      end

      def recovered
        @dropping = false
        @logger.info("shopify_events: emitting again; #{@native.stats[:dropped]} events dropped so far")
      end
    end
  end
end
