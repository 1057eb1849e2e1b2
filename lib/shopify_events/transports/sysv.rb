# frozen_string_literal: true

require "shopify_events/transports/drop_policy"

module ShopifyEvents
  module Transports
    # Puts each event into the host's SysV message queue with one
    # non-blocking msgsnd (see docs/PROTOCOL.md and the README's delivery
    # contract). With a spool (`spool`: Configuration#spool_settings), what
    # the queue cannot take (full, or larger than kernel.msgmax) goes to the
    # process's spool file instead, and once the process spooled, its events
    # follow there until the drain took them (order). The native emitter
    # does the work; this class adds the drop policy of `emit`: count, and
    # log once per burst of drops.
    class Sysv
      include DropPolicy

      attr_reader :native

      def initialize(queue_key:, queue_permissions:, logger:, spool: nil)
        @native = Native::SysvEmitter.new(queue_key, queue_permissions, spool)
        @spool_dir = spool&.fetch(:dir)
        @envelope_limit = spool&.fetch(:max_event_bytes)
        @logger = logger
        watch_drops
      end

      # Events are in the queue or the spool once `emit` returned; with
      # `spool_sync` interval this writes the spool's last ones to disk too
      # (at exit as well: ShopifyEvents.flush_at_exit).
      def flush(_timeout = nil)
        @native.flush_spool
      end

      def stats
        { transport: :sysv, queue_key: @native.key, spool_dir: @spool_dir }.merge!(@native.stats)
      end

      # Largest envelope this host and queue accept (opens the queue).
      def max_envelope_size
        @native.max_envelope_size
      end

      # The size limit events deferred to a commit are held to when emitted:
      # max_event_bytes with a spool (it takes what the queue cannot);
      # without one max_envelope_size, read once (kernel.msgmax if the queue
      # cannot be opened now; the send reports it then).
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
