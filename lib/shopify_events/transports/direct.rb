# frozen_string_literal: true

require "shopify_events/transports/drop_policy"

module ShopifyEvents
  module Transports
    # Produces to Kafka from inside this process (no host daemon): a
    # librdkafka producer fed by a bounded buffer and one worker thread, with
    # the drain's record mapping (headers plus `event_id`, emit time as the
    # timestamp). Events in the buffer are lost if the process dies, unlike
    # with `sysv`; `ShopifyEvents.flush` and the flush at exit wait for them.
    #
    # librdkafka's errors (brokers down, authentication) reach the configured
    # logger through a log thread, started with the first emit in each
    # process (a forked child starts its own); a line repeated within a
    # minute is logged once with a count.
    class Direct
      include DropPolicy

      # Seconds the log thread waits for lines per native call.
      LOG_WAIT = 1.0

      attr_reader :native

      def initialize(config)
        @native = Native::DirectEmitter.new(self.class.kafka_settings(config), config.direct_buffer,
                                            config.flush_timeout)
        @logger = config.logger
        watch_drops
        @failed_seen = 0
        @log_thread = nil
        @log_lock = Mutex.new
      end

      def emit(topic, payload, key, headers)
        start_log_thread unless @log_thread&.alive?
        super
      end

      def emit!(topic, payload, key, headers)
        start_log_thread unless @log_thread&.alive?
        super
      end

      def send_envelope(bytes)
        start_log_thread unless @log_thread&.alive?
        super
      end

      def send_envelope!(bytes)
        start_log_thread unless @log_thread&.alive?
        super
      end

      # ShopifyEvents.emit calls this transport itself: its `emit` starts
      # the log thread (in each process) before the native one runs.
      def emitter
        self
      end

      # Largest envelope Kafka takes (`message.max.bytes`).
      def envelope_limit
        @native.max_envelope_size
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

      # Stops taking events (emit then raises TransportError) and the log
      # thread. Does not wait: what the worker holds is delivered in the
      # background within `flush_timeout`; call `flush` first to wait.
      def close
        @log_thread&.kill
        @native.close
      end

      def last_error
        @native.last_error
      end

      def stats
        { transport: :direct }.merge!(@native.stats)
      end

      private

      def start_log_thread
        @log_lock.synchronize { @log_thread = spawn_log_thread unless @log_thread&.alive? }
      end

      def spawn_log_thread
        Thread.new do
          Thread.current.name = "shopify_events-direct-log"
          Thread.current.report_on_exception = false
          loop { write_logs(@native.take_logs(LOG_WAIT)) }
        end
      end

      def write_logs(lines)
        lines.each { |level, message| @logger.public_send(level, "shopify_events direct: #{message}") }
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
