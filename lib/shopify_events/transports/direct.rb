# frozen_string_literal: true

require "shopify_events/transports/drop_policy"

module ShopifyEvents
  module Transports
    # Produces to Kafka from inside this process (no host daemon): a
    # librdkafka producer fed by a bounded buffer and one worker thread, with
    # the drain's record mapping (headers plus `event_id`, emit time as the
    # timestamp). Events in the buffer are lost if the process dies, unlike
    # with `sysv`; `ShopifyEvents.flush` and the flush at exit wait for them.
    class Direct
      include DropPolicy

      attr_reader :native

      def initialize(config)
        @native = Native::DirectEmitter.new(self.class.kafka_settings(config), config.direct_buffer,
                                            config.flush_timeout)
        @logger = config.logger
        @dropping = false
        @failed_seen = 0
      end

      # librdkafka settings: `config.kafka` unchanged, with `bootstrap.servers`
      # from `config.brokers` (SHOPIFY_EVENTS_BROKERS) when set.
      def self.kafka_settings(config)
        settings = config.kafka.to_h { |name, value| [name.to_s, value.to_s] }
        settings["bootstrap.servers"] = config.brokers.to_s if config.brokers
        unless settings["bootstrap.servers"]&.match?(/\S/)
          raise ConfigurationError, "the direct transport needs Kafka brokers: set SHOPIFY_EVENTS_BROKERS " \
                                    "(host:port,host:port) or `brokers` in the configuration"
        end
        settings
      end

      # Waits up to `timeout` seconds (without the GVL) until Kafka has
      # acknowledged every event emitted so far; true if it did.
      def flush(timeout)
        done = @native.flush(timeout.to_f)
        report_failures
        @logger.warn("shopify_events: direct flush timed out after #{timeout}s: #{stats[:pending]} events pending") \
          unless done
        done
      end

      def last_error
        @native.last_error
      end

      def stats
        { transport: :direct }.merge!(@native.stats)
      end

      private

      def drop_reason
        @native.last_drop
      end

      def report_failures
        failed = @native.stats[:failed]
        return if failed == @failed_seen

        @logger.error("shopify_events: #{failed - @failed_seen} events failed in Kafka: #{@native.last_error}")
        @failed_seen = failed
      end
    end
  end
end
