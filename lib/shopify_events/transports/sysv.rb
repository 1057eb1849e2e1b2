# frozen_string_literal: true

require "shopify_events/transports/drop_policy"

module ShopifyEvents
  module Transports
    # Puts each event into the host's SysV message queue with one
    # non-blocking msgsnd (see docs/PROTOCOL.md and the README's delivery
    # contract). The native emitter does the work; this class adds the
    # drop policy of `emit`: count, and log once per burst of drops.
    class Sysv
      include DropPolicy

      attr_reader :native

      def initialize(queue_key:, queue_permissions:, logger:)
        @native = Native::SysvEmitter.new(queue_key, queue_permissions)
        @logger = logger
        @dropping = false
      end

      def stats
        { transport: :sysv, queue_key: @native.key }.merge!(@native.stats)
      end

      # Largest envelope this host and queue accept (opens the queue).
      def max_envelope_size
        @native.max_envelope_size
      end

      # The size limit events deferred to a commit are held to when emitted:
      # max_envelope_size, read once (kernel.msgmax if the queue cannot be
      # opened now; the send reports it then).
      def envelope_limit
        @envelope_limit ||= begin
          max_envelope_size
        rescue TransportError
          Native.message_size_limit
        end
      end
    end
  end
end
