# frozen_string_literal: true

require "shopify_events/transports/sysv"
require "shopify_events/transports/test"

module ShopifyEvents
  # Transports are small duck-typed objects: `emit(topic, payload, key,
  # headers)` returns the event id or nil, `emit!` raises instead of
  # dropping, `stats` returns a Hash, and buffering ones add `flush(timeout)`.
  module Transports
    def self.build(config)
      case config.transport
      when :sysv
        Sysv.new(queue_key: config.queue_key, queue_permissions: config.queue_permissions, logger: config.logger)
      when :test then Test.new
      when :log
        require "shopify_events/transports/log"
        Log.new(logger: config.logger)
      when :socket
        require "shopify_events/transports/socket"
        Socket.new(config)
      when :direct
        require "shopify_events/transports/direct"
        Direct.new(config)
      end
    end
  end
end
