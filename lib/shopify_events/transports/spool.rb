# frozen_string_literal: true

require "shopify_events/transports/drop_policy"

module ShopifyEvents
  module Transports
    # Appends each event to this process's own spool log in `spool_dir`,
    # which `shopify-events drain` tails (README, "The spool transport"):
    # a copy into a mapped file, no system call in the common case. The
    # event then survives any crash of the process, and a reboot once the
    # kernel wrote it back (`spool_sync` decides when). A spool that is full
    # or cannot be written makes `emit` drop (counted, logged once per
    # burst) and `emit!` raise SpoolFull or SpoolError.
    class Spool
      include DropPolicy

      attr_reader :native

      def initialize(config)
        settings = config.spool_settings
        unless settings
          raise ConfigurationError, "the spool transport needs spool_dir (SHOPIFY_EVENTS_SPOOL_DIR), which is off: " \
                                    "set it to the spool directory, e.g. #{Configuration::DEFAULT_SPOOL_DIR}"
        end

        @native = Native::SpoolEmitter.new(config.queue_key, settings)
        @queue_key = config.queue_key
        @envelope_limit = settings.fetch(:max_event_bytes)
        @logger = config.logger
        watch_drops
      end

      # Events are in the spool file once `emit` returned; with
      # `spool_sync` interval this writes the last ones to disk too.
      def flush(_timeout = nil)
        @native.flush
      end

      # The size limit events deferred to a commit are held to when emitted.
      attr_reader :envelope_limit

      def stats
        { transport: :spool, queue_key: @queue_key, spool_dir: @native.dir }.merge!(@native.stats)
      end
    end
  end
end
