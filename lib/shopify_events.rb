# frozen_string_literal: true

require "shopify_events/version"
require "shopify_events/error"
require "shopify_events/native"
require "shopify_events/configuration"
require "shopify_events/event"
require "shopify_events/transports"

# Emit events from Ruby into a Kafka pipeline for about a microsecond each.
#
#   ShopifyEvents.emit("checkout.completed", { order_id: 1 }, key: shop.id.to_s)
#
# See README.md for the delivery contract and the configuration.
module ShopifyEvents
  @config = nil
  @transport = nil
  @lock = Mutex.new

  class << self
    # Sends one event; returns its id (a UUIDv7 String), or nil if the
    # transport could not take it (counted in `stats[:dropped]`, logged once
    # per burst). Raises at once for programming errors: InvalidTopic,
    # PayloadTooLarge, TypeError/ArgumentError for payload, key or headers.
    def emit(topic, payload, key: nil, headers: nil)
      transport.emit(topic, payload, key, headers)
    end

    # Like `emit`, but raises QueueFull (or another TransportError) instead
    # of dropping.
    def emit!(topic, payload, key: nil, headers: nil)
      transport.emit!(topic, payload, key, headers)
    end

    def config
      @config || @lock.synchronize { @config ||= Configuration.from_env }
    end

    # Yields the configuration; the transport is rebuilt on next use.
    def configure
      yield config
      @lock.synchronize { @transport = nil }
      config
    end

    def transport
      @transport || begin
        settings = config
        @lock.synchronize { @transport ||= build_transport(settings) }
      end
    end

    # Counters of the current transport (emitted, dropped, ...).
    def stats
      transport.stats
    end

    # Waits up to `timeout` seconds until every event emitted so far has
    # left the process (socket: acknowledged by the proxy; direct:
    # acknowledged by Kafka). Returns true if it did. Transports that never
    # buffer (sysv, test, log) return true at once.
    def flush(timeout = nil)
      current = @transport
      return true if current.nil? || !current.respond_to?(:flush)

      current.flush(timeout || config.flush_timeout)
    end

    # The bounded flush run at process exit.
    def flush_at_exit
      flush
    rescue StandardError => e
      config.logger.warn("shopify_events: flush at exit failed: #{e.class}: #{e.message}")
      false
    end

    # Forgets the configuration and transport; the next use reads ENV again.
    def reset!
      @lock.synchronize do
        @config = nil
        @transport = nil
      end
    end

    private

    def build_transport(config)
      Transports.build(config)
    end
  end

  at_exit { ShopifyEvents.flush_at_exit }
end
