# frozen_string_literal: true

module ShopifyEvents
  module Transports
    # The drop policy of the transports that hand events to native code
    # (sysv, spool, socket, direct): `emit` returns nil when the transport
    # cannot take an event (counted natively in stats[:dropped]) and logs the
    # first drop of a burst and the recovery after it, never one line per
    # event; `emit!` raises instead. `send_envelope(bytes)` /
    # `send_envelope!` do the same for an envelope encoded earlier (events
    # deferred to a database commit, outbox rows).
    #
    # The native emitter applies the policy itself and calls back
    # `drops_began` / `drops_ended` (both rare), so `ShopifyEvents.emit` can
    # call it directly (`emitter`) without a Ruby method in between.
    # Includers set @native and @logger, then call `watch_drops`.
    module DropPolicy
      def emit(topic, payload, key, headers)
        @native.emit(topic, payload, key, headers)
      end

      def emit!(topic, payload, key, headers)
        @native.emit!(topic, payload, key, headers)
      end

      # Sends an envelope from Native.encode_event as it is (same id and
      # emit time); raises DecodeError if `bytes` is not one intact envelope.
      def send_envelope(bytes)
        @native.send_envelope(bytes)
      end

      def send_envelope!(bytes)
        @native.send_envelope!(bytes)
      end

      # What ShopifyEvents.emit calls on its fast path: an object whose
      # `emit` and `emit!` do what this transport's do.
      def emitter
        @native
      end

      private

      def watch_drops
        @native.drop_log = self
      end

      # Called by the native emitter at the first drop of a burst.
      def drops_began(reason)
        @logger.warn("shopify_events: dropping events: #{reason}. Further drops are counted in " \
                     "ShopifyEvents.stats[:dropped] and logged again once emitting recovers.")
      end

      # Called by the native emitter at the first event taken after drops.
      def drops_ended
        @logger.info("shopify_events: emitting again; #{@native.stats[:dropped]} events dropped so far")
      end
    end
  end
end
