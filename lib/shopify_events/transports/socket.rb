# frozen_string_literal: true

require "shopify_events/transports/drop_policy"

module ShopifyEvents
  module Transports
    # Sends each event to the host's `shopify-events proxy` over TCP or a
    # Unix socket (containers, which cannot reach the host's SysV queue).
    # `emit` only buffers the frame; a native IO thread writes it and frees it
    # when the proxy acknowledges it (the event is then in the host queue).
    # Unacknowledged events are resent after a reconnect and lost if the
    # process dies: `flush` waits for them (a bounded flush runs at exit).
    class Socket
      include DropPolicy

      FORMS = "tcp://HOST:PORT (e.g. tcp://172.17.0.1:9395) or " \
              "unix:///PATH (e.g. unix:///run/shopify-events/proxy.sock)"
      ADDRESS = %r{\A(tcp://[^/\s]+:\d{1,5}|unix:(//)?/[^/\s]\S*)\z}
      MAX_BUFFERED_EVENTS = Native::DEFAULTS.fetch(:socket_max_buffered_events)
      MAX_BUFFERED_BYTES = Native::DEFAULTS.fetch(:socket_max_buffered_bytes)

      attr_reader :native

      def initialize(config, max_buffered_events: MAX_BUFFERED_EVENTS, max_buffered_bytes: MAX_BUFFERED_BYTES)
        address = config.proxy.to_s.strip
        unless address.match?(ADDRESS)
          raise ConfigurationError, "proxy address #{config.proxy.inspect} (SHOPIFY_EVENTS_PROXY) is not valid " \
                                    "for the socket transport: use #{FORMS}"
        end
        token = config.proxy_token.to_s.empty? ? nil : config.proxy_token.to_s
        @native = Native::SocketEmitter.new(address, token, max_buffered_events, max_buffered_bytes)
        @logger = config.logger
        watch_drops
      end

      # Waits up to `timeout` seconds until the proxy acknowledged every
      # event emitted so far; returns whether it did.
      def flush(timeout)
        @native.flush(Float(timeout))
      end

      def stats
        { transport: :socket, proxy: @native.address }.merge!(@native.stats)
      end
    end
  end
end
