# frozen_string_literal: true

require "shopify_events/transports/sysv"
require "shopify_events/transports/test"

module ShopifyEvents
  # Transports are small duck-typed objects: `emit(topic, payload, key,
  # headers)` returns the event id or nil, `emit!` raises instead of
  # dropping, `stats` returns a Hash, and buffering ones add `flush(timeout)`.
  # A transport may answer `emitter`: an object whose `emit` and `emit!` do
  # what its own do, which ShopifyEvents.emit then calls directly.
  module Transports
    # Transports loaded on first use (transports/NAME.rb), built from the
    # configuration.
    ON_DEMAND = { spool: :Spool, socket: :Socket, direct: :Direct }.freeze

    def self.build(config)
      case config.transport
      when :sysv
        Sysv.new(queue_key: config.queue_key, queue_permissions: config.queue_permissions, logger: config.logger,
                 spool: config.spool_settings)
      when :test then Test.new(max_event_bytes: config.spool_dir && config.max_event_bytes)
      when :log
        require "shopify_events/transports/log"
        Log.new(logger: config.logger)
      else on_demand(config.transport).new(config)
      end
    end

    def self.on_demand(name)
      require "shopify_events/transports/#{name}"
      const_get(ON_DEMAND.fetch(name))
    end
  end
end
