# frozen_string_literal: true

module ShopifyEvents
  module Outbox
    # The background thread that runs a Sweeper every
    # `outbox_sweep_interval` seconds (with jitter, so processes started
    # together spread out; the first sweep comes within one interval).
    #
    # One per process, started lazily: by the first outbox event, and by the
    # Railtie at the first request or job (so a process that restarts after
    # a crash re-sends what the crashed one left, before emitting anything).
    # A forked child starts its own (the parent's thread does not exist
    # there). It ends for good when the outbox table does not exist, when
    # `outbox_sweep_interval` is 0, or with the test transport.
    module SweeperThread
      @pid = nil
      @thread = nil
      @lock = Mutex.new

      class << self
        # Starts this process's thread unless it was started here already.
        # Cheap enough for every request: a pid comparison.
        def ensure_running
          return if @pid == Process.pid

          @lock.synchronize do
            next if @pid == Process.pid

            @pid = Process.pid
            config = ShopifyEvents.config
            next if config.outbox_sweep_interval.zero? || config.transport == :test

            @thread = Thread.new { run(config) }
          end
        end

        # The running thread, if any (for specs).
        attr_reader :thread

        # Stops this process's thread (the next ensure_running starts one).
        def stop
          @lock.synchronize do
            @thread&.kill&.join(5)
            @thread = nil
            @pid = nil
          end
        end

        private

        # Sweeps with the current configuration (ShopifyEvents.config= may
        # replace it) until it says not to, or the table does not exist.
        def run(config)
          Thread.current.name = "shopify_events-outbox-sweeper"
          Thread.current.report_on_exception = false
          sleep(rand * config.outbox_sweep_interval)
          sweeper = Sweeper.new(config)
          while (sweeper = current(sweeper))
            break if sweep(sweeper) == :no_table

            pause(sweeper.config)
          end
        end

        def pause(config)
          sleep(config.outbox_sweep_interval * (0.5 + rand))
        end

        # A sweeper for the current configuration, or nil when it turns sweeping off.
        def current(sweeper)
          config = ShopifyEvents.config
          return nil if config.outbox_sweep_interval.zero? || config.transport == :test

          sweeper.config.equal?(config) ? sweeper : Sweeper.new(config)
        end

        def sweep(sweeper)
          sweeper.sweep
        rescue StandardError => e
          sweeper.config.logger.warn("shopify_events: outbox sweep failed (#{e.class}: #{e.message}); " \
                                     "retrying in the next sweep")
          nil
        end
      end
    end
  end
end
