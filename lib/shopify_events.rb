# frozen_string_literal: true

require "shopify_events/version"
require "shopify_events/error"
require "shopify_events/native"
require "shopify_events/configuration"
require "shopify_events/event"
require "shopify_events/transports"
require "shopify_events/instrumentation"
require "shopify_events/header_context"
require "shopify_events/detour"
require "shopify_events/transactions"

# Emit events from Ruby into a Kafka pipeline for about a microsecond each.
#
#   ShopifyEvents.emit("checkout.completed", { order_id: 1 }, key: shop.id.to_s)
#
# See README.md for the delivery contract and the configuration.
module ShopifyEvents
  @config = nil
  @transport = nil
  @lock = Mutex.new
  # Set when ActiveSupport::Notifications is loaded (see Instrumentation).
  @instrumentation = nil
  # True while someone may listen to our notifications (see Instrumentation).
  @watched = false
  # Connections of this process with an open ActiveRecord transaction
  # (maintained by ShopifyEvents::Transactions::Tracker).
  @open_transactions = 0
  # Adds default, request and trace headers (HeaderContext), or nil.
  @headers = nil
  # True while emit must do more than hand the event to the transport
  # (someone listens to notifications, a transaction is open somewhere in
  # the process, or headers are added). Derived from @watched,
  # @open_transactions and @headers under @detour_lock (refresh_detour);
  # true until the first transport is built.
  @detour = true
  # The fast path, and the one check `emit` pays for everything above: the
  # object `emit` hands events to while @detour is false (the transport's
  # `emitter`, e.g. its native emitter, or the transport itself), nil while
  # emit must take the detour or no transport is built. Derived with
  # @detour, and whenever @transport changes.
  @emitter = nil
  @detour_lock = Mutex.new

  class << self
    # Sends one event; returns its id (a UUIDv7 String), or nil if the
    # transport could not take it (counted in `stats[:dropped]`, logged once
    # per burst). Raises at once for programming errors: InvalidTopic,
    # PayloadTooLarge, TypeError/ArgumentError for payload, key or headers.
    #
    # Inside an ActiveRecord transaction the event is encoded (and
    # validated) at once and sent when the transaction commits, never if it
    # rolls back; `after_commit: false` sends at once instead, and
    # `outbox: true` also writes it to the outbox table in the transaction
    # (README, "Rails").
    def emit(topic, payload, key: nil, headers: nil, after_commit: nil, outbox: nil) # rubocop:disable Metrics/ParameterLists
      emitter = @emitter
      return emitter.emit(topic, payload, key, headers) unless emitter.nil? || after_commit || outbox

      detour(@transport || transport, false, topic, payload, key, headers, after_commit, outbox)
    end

    # Like `emit`, but raises QueueFull (or another TransportError) instead
    # of dropping. A deferred event raises from the commit, after the other
    # events of the transaction were sent.
    def emit!(topic, payload, key: nil, headers: nil, after_commit: nil, outbox: nil) # rubocop:disable Metrics/ParameterLists
      emitter = @emitter
      return emitter.emit!(topic, payload, key, headers) unless emitter.nil? || after_commit || outbox

      detour(@transport || transport, true, topic, payload, key, headers, after_commit, outbox)
    end

    def config
      @config || @lock.synchronize { @config ||= Configuration.from_env }
    end

    # Replaces the configuration (the Railtie builds one from
    # config/shopify_events.yml); the transport is rebuilt on next use.
    def config=(configuration)
      @lock.synchronize do
        @config = configuration
        drop_transport
      end
    end

    # Yields the configuration; the transport is rebuilt on next use.
    def configure
      yield config
      @lock.synchronize { drop_transport }
      config
    end

    def transport
      @transport || begin
        settings = config
        @lock.synchronize { @transport || build_transport(settings) }
      end
    end

    # Uses `replacement` as the transport while the block runs, then puts the
    # previous one back (ShopifyEvents::Testing.capture_events uses it).
    def with_transport(replacement)
      previous = @lock.synchronize { @transport.tap { use_transport(replacement) } }
      yield
    ensure
      @lock.synchronize { use_transport(previous) }
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
        drop_transport
      end
    end

    private

    # Closes the transport being replaced (the direct transport stops its
    # threads; what it holds is still delivered within `flush_timeout`).
    def drop_transport
      previous = @transport
      use_transport(nil)
      previous.close if previous.respond_to?(:close)
    end

    # Builds the transport and makes it current. Call with @lock held.
    def build_transport(config)
      built = Transports.build(config)
      @instrumentation ||= Instrumentation.new if defined?(::ActiveSupport::Notifications)
      # The next emit asks ActiveSupport again whether anyone listens.
      @instrumentation&.forget_listeners
      @detour_lock.synchronize do
        @headers = HeaderContext.build(config)
        @transport = built
        refresh_detour
      end
      built
    end

    # Makes `current` (or none) the transport. Call with @lock held.
    def use_transport(current)
      @detour_lock.synchronize do
        @transport = current
        refresh_detour
      end
    end
  end

  at_exit { ShopifyEvents.flush_at_exit }
end

# Events follow ActiveRecord transactions once ActiveRecord::Base loads.
ActiveSupport.on_load(:active_record) { ShopifyEvents::Transactions.install } if defined?(ActiveSupport.on_load)
require "shopify_events/railtie" if defined?(Rails::Railtie)
