# frozen_string_literal: true

module ShopifyEvents
  module Transports
    # Puts each event into the host's SysV message queue with one
    # non-blocking msgsnd (see docs/PROTOCOL.md and the README's delivery
    # contract). The native emitter does the work; this class adds the
    # drop policy of `emit`: count, and log once per burst of drops.
    class Sysv
      attr_reader :native

      def initialize(queue_key:, queue_permissions:, logger:)
        @native = Native::SysvEmitter.new(queue_key, queue_permissions)
        @logger = logger
        @dropping = false
      end

      def emit(topic, payload, key, headers)
        id = @native.emit(topic, payload, key, headers)
        if id
          recovered if @dropping
          return id
        end
        dropped
      end

      def emit!(topic, payload, key, headers)
        @native.emit!(topic, payload, key, headers)
      end

      def stats
        { transport: :sysv, queue_key: @native.key }.merge!(@native.stats)
      end

      # Largest envelope this host and queue accept (opens the queue).
      def max_envelope_size
        @native.max_envelope_size
      end

      private

      def dropped
        unless @dropping
          @dropping = true
          @logger.warn("shopify_events: dropping events: #{@native.last_error}. Further drops are " \
                       "counted in ShopifyEvents.stats[:dropped] and logged again once emitting recovers.")
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
